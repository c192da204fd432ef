// SPDX-License-Identifier: BSD-2-Clause
//
// The command table: one row per command (kv.h, struct Cmd). dispatch()
// does the checks the flags ask for before calling the handler; COMMAND
// (cmd_server.cpp) reports these rows.
#include <algorithm>
#include <cstring>

#include "kv.h"

namespace daxnet::kv {

namespace {

using S = KvService;

// Flag shorthands.
constexpr std::uint32_t W = kWrite, R = kReadonly, OOM = kDenyOom, F = kFast, L = kLoading, ST = kStale,
			A = kAdmin, NS = kNoscript, NA = kNoAuth, AB = kAllowBusy, NM = kNoMulti,
			SS = kSkipSlowlog, PS = kPubsub, MR = kMayReplicate, B = kBlocking, MK = kMovableKeys;

// name, handler, arity, flags, first key, last key, step, group, since, summary
const Cmd kTable[] = {
	{"append", &S::cmd_append, 3, W|OOM|F, 1, 1, 1, "string", "2.0.0", "Append a value to a key"},
	{"auth", &S::cmd_auth, -2, NS|L|ST|F|NA|AB, 0, 0, 0, "connection", "1.0.0", "Authenticate to the server"},
	{"bgsave", &S::cmd_bgsave, -1, A|NS, 0, 0, 0, "server", "1.0.0", "Asynchronously save the dataset to disk"},
	{"bitcount", &S::cmd_bitcount, -2, R, 1, 1, 1, "bitmap", "2.6.0", "Count set bits in a string"},
	{"bitpos", &S::cmd_bitpos, -3, R, 1, 1, 1, "bitmap", "2.8.7", "Find first bit set or clear in a string"},
	{"blmove", &S::cmd_blmove, 6, W|OOM|B, 1, 2, 1, "list", "6.2.0", "Pop an element from a list, push it to another list and return it; or block until one is available"},
	{"blmpop", &S::cmd_blmpop, -5, W|B|MK, 0, 0, 0, "list", "7.0.0", "Pop elements from a list, or block until one is available"},
	{"blpop", &S::cmd_blpop, -3, W|B, 1, -2, 1, "list", "2.0.0", "Remove and get the first element in a list, or block until one is available"},
	{"brpop", &S::cmd_brpop, -3, W|B, 1, -2, 1, "list", "2.0.0", "Remove and get the last element in a list, or block until one is available"},
	{"brpoplpush", &S::cmd_brpoplpush, 4, W|OOM|B, 1, 2, 1, "list", "2.2.0", "Pop an element from a list, push it to another list and return it; or block until one is available"},
	{"client", &S::cmd_client, -2, NS|L|ST, 0, 0, 0, "connection", "2.4.0", "A container for client connection commands"},
	{"command", &S::cmd_command, -1, L|ST, 0, 0, 0, "server", "2.8.13", "Get array of Redis command details"},
	{"config", &S::cmd_config, -2, A|NS|L|ST, 0, 0, 0, "server", "2.0.0", "A container for server configuration commands"},
	{"copy", &S::cmd_copy, -3, W|OOM, 1, 2, 1, "generic", "6.2.0", "Copy a key"},
	{"dbsize", &S::cmd_dbsize, 1, R|F, 0, 0, 0, "server", "1.0.0", "Return the number of keys in the selected database"},
	{"debug", &S::cmd_debug, -2, A|NS|L|ST, 0, 0, 0, "server", "1.0.0", "A container for debugging commands"},
	{"decr", &S::cmd_decr, 2, W|OOM|F, 1, 1, 1, "string", "1.0.0", "Decrement the integer value of a key by one"},
	{"decrby", &S::cmd_decrby, 3, W|OOM|F, 1, 1, 1, "string", "1.0.0", "Decrement the integer value of a key by the given number"},
	{"del", &S::cmd_del, -2, W, 1, -1, 1, "generic", "1.0.0", "Delete a key"},
	{"discard", &S::cmd_discard, 1, NS|L|ST|F|AB, 0, 0, 0, "transactions", "2.0.0", "Discard all commands issued after MULTI"},
	{"echo", &S::cmd_echo, 2, F, 0, 0, 0, "connection", "1.0.0", "Echo the given string"},
	{"eval", &S::cmd_eval, -3, NS|ST|SS, 0, 0, 0, "scripting", "2.6.0", "Execute a Lua script server side"},
	{"eval_ro", &S::cmd_eval_ro, -3, NS|ST|SS|R, 0, 0, 0, "scripting", "7.0.0", "Execute a read-only Lua script server side"},
	{"evalsha", &S::cmd_evalsha, -3, NS|ST|SS, 0, 0, 0, "scripting", "2.6.0", "Execute a Lua script server side"},
	{"evalsha_ro", &S::cmd_evalsha_ro, -3, NS|ST|SS|R, 0, 0, 0, "scripting", "7.0.0", "Execute a read-only Lua script server side"},
	{"exec", &S::cmd_exec, 1, NS|L|ST|SS, 0, 0, 0, "transactions", "1.2.0", "Execute all commands issued after MULTI"},
	{"exists", &S::cmd_exists, -2, R|F, 1, -1, 1, "generic", "1.0.0", "Determine if a key exists"},
	{"expire", &S::cmd_expire, -3, W|F, 1, 1, 1, "generic", "1.0.0", "Set a key's time to live in seconds"},
	{"expireat", &S::cmd_expireat, -3, W|F, 1, 1, 1, "generic", "1.2.0", "Set the expiration for a key as a UNIX timestamp"},
	{"expiretime", &S::cmd_expiretime, 2, R|F, 1, 1, 1, "generic", "7.0.0", "Get the expiration Unix timestamp for a key"},
	{"flushall", &S::cmd_flushall, -1, W, 0, 0, 0, "server", "1.0.0", "Remove all keys from all databases"},
	{"flushdb", &S::cmd_flushdb, -1, W, 0, 0, 0, "server", "1.0.0", "Remove all keys from the current database"},
	{"function", &S::cmd_function, -2, NS, 0, 0, 0, "scripting", "7.0.0", "A container for function commands"},
	{"get", &S::cmd_get, 2, R|F, 1, 1, 1, "string", "1.0.0", "Get the value of a key"},
	{"getbit", &S::cmd_getbit, 3, R|F, 1, 1, 1, "bitmap", "2.2.0", "Returns the bit value at offset in the string value stored at key"},
	{"getdel", &S::cmd_getdel, 2, W|F, 1, 1, 1, "string", "6.2.0", "Get the value of a key and delete the key"},
	{"getex", &S::cmd_getex, -2, W|F, 1, 1, 1, "string", "6.2.0", "Get the value of a key and optionally set its expiration"},
	{"getrange", &S::cmd_getrange, 4, R, 1, 1, 1, "string", "2.4.0", "Get a substring of the string stored at a key"},
	{"getset", &S::cmd_getset, 3, W|OOM|F, 1, 1, 1, "string", "1.0.0", "Set the string value of a key and return its old value"},
	{"hdel", &S::cmd_hdel, -3, W|F, 1, 1, 1, "hash", "2.0.0", "Delete one or more hash fields"},
	{"hello", &S::cmd_hello, -1, NS|L|ST|F|NA|AB, 0, 0, 0, "connection", "6.0.0", "Handshake with Redis"},
	{"hexists", &S::cmd_hexists, 3, R|F, 1, 1, 1, "hash", "2.0.0", "Determine if a hash field exists"},
	{"hget", &S::cmd_hget, 3, R|F, 1, 1, 1, "hash", "2.0.0", "Get the value of a hash field"},
	{"hgetall", &S::cmd_hgetall, 2, R, 1, 1, 1, "hash", "2.0.0", "Get all the fields and values in a hash"},
	{"hincrby", &S::cmd_hincrby, 4, W|OOM|F, 1, 1, 1, "hash", "2.0.0", "Increment the integer value of a hash field by the given number"},
	{"hincrbyfloat", &S::cmd_hincrbyfloat, 4, W|OOM|F, 1, 1, 1, "hash", "2.6.0", "Increment the float value of a hash field by the given amount"},
	{"hkeys", &S::cmd_hkeys, 2, R, 1, 1, 1, "hash", "2.0.0", "Get all the fields in a hash"},
	{"hlen", &S::cmd_hlen, 2, R|F, 1, 1, 1, "hash", "2.0.0", "Get the number of fields in a hash"},
	{"hmget", &S::cmd_hmget, -3, R|F, 1, 1, 1, "hash", "2.0.0", "Get the values of all the given hash fields"},
	{"hmset", &S::cmd_hmset, -4, W|OOM|F, 1, 1, 1, "hash", "2.0.0", "Set multiple hash fields to multiple values"},
	{"hrandfield", &S::cmd_hrandfield, -2, R, 1, 1, 1, "hash", "6.2.0", "Get one or multiple random fields from a hash"},
	{"hscan", &S::cmd_hscan, -3, R, 1, 1, 1, "hash", "2.8.0", "Incrementally iterate hash fields and associated values"},
	{"hset", &S::cmd_hset, -4, W|OOM|F, 1, 1, 1, "hash", "2.0.0", "Set the string value of a hash field"},
	{"hsetnx", &S::cmd_hsetnx, 4, W|OOM|F, 1, 1, 1, "hash", "2.0.0", "Set the value of a hash field, only if the field does not exist"},
	{"hstrlen", &S::cmd_hstrlen, 3, R|F, 1, 1, 1, "hash", "3.2.0", "Get the length of the value of a hash field"},
	{"hvals", &S::cmd_hvals, 2, R, 1, 1, 1, "hash", "2.0.0", "Get all the values in a hash"},
	{"incr", &S::cmd_incr, 2, W|OOM|F, 1, 1, 1, "string", "1.0.0", "Increment the integer value of a key by one"},
	{"incrby", &S::cmd_incrby, 3, W|OOM|F, 1, 1, 1, "string", "1.0.0", "Increment the integer value of a key by the given amount"},
	{"incrbyfloat", &S::cmd_incrbyfloat, 3, W|OOM|F, 1, 1, 1, "string", "2.6.0", "Increment the float value of a key by the given amount"},
	{"info", &S::cmd_info, -1, L|ST, 0, 0, 0, "server", "1.0.0", "Get information and statistics about the server"},
	{"keys", &S::cmd_keys, 2, R, 0, 0, 0, "generic", "1.0.0", "Find all keys matching the given pattern"},
	{"lastsave", &S::cmd_lastsave, 1, L|ST|F, 0, 0, 0, "server", "1.0.0", "Get the UNIX time stamp of the last successful save to disk"},
	{"lcs", &S::cmd_lcs, -3, R, 1, 2, 1, "string", "7.0.0", "Find longest common substring"},
	{"lindex", &S::cmd_lindex, 3, R, 1, 1, 1, "list", "1.0.0", "Get an element from a list by its index"},
	{"linsert", &S::cmd_linsert, 5, W|OOM, 1, 1, 1, "list", "2.2.0", "Insert an element before or after another element in a list"},
	{"llen", &S::cmd_llen, 2, R|F, 1, 1, 1, "list", "1.0.0", "Get the length of a list"},
	{"lmove", &S::cmd_lmove, 5, W|OOM, 1, 2, 1, "list", "6.2.0", "Pop an element from a list, push it to another list and return it"},
	{"lmpop", &S::cmd_lmpop, -4, W|MK, 0, 0, 0, "list", "7.0.0", "Pop elements from a list"},
	{"lpop", &S::cmd_lpop, -2, W|F, 1, 1, 1, "list", "1.0.0", "Remove and get the first elements in a list"},
	{"lpos", &S::cmd_lpos, -3, R, 1, 1, 1, "list", "6.0.6", "Return the index of matching elements on a list"},
	{"lpush", &S::cmd_lpush, -3, W|OOM|F, 1, 1, 1, "list", "1.0.0", "Prepend one or multiple elements to a list"},
	{"lpushx", &S::cmd_lpushx, -3, W|OOM|F, 1, 1, 1, "list", "2.2.0", "Prepend an element to a list, only if the list exists"},
	{"lrange", &S::cmd_lrange, 4, R, 1, 1, 1, "list", "1.0.0", "Get a range of elements from a list"},
	{"lrem", &S::cmd_lrem, 4, W, 1, 1, 1, "list", "1.0.0", "Remove elements from a list"},
	{"lset", &S::cmd_lset, 4, W|OOM, 1, 1, 1, "list", "1.0.0", "Set the value of an element in a list by its index"},
	{"ltrim", &S::cmd_ltrim, 4, W, 1, 1, 1, "list", "1.0.0", "Trim a list to the specified range"},
	{"memory", &S::cmd_memory, -2, R, 2, 2, 1, "server", "4.0.0", "A container for memory diagnostics commands"},
	{"mget", &S::cmd_mget, -2, R|F, 1, -1, 1, "string", "1.0.0", "Get the values of all the given keys"},
	{"move", &S::cmd_move, 3, W|F, 1, 1, 1, "generic", "1.0.0", "Move a key to another database"},
	{"mset", &S::cmd_mset, -3, W|OOM, 1, -1, 2, "string", "1.0.1", "Set multiple keys to multiple values"},
	{"msetnx", &S::cmd_msetnx, -3, W|OOM, 1, -1, 2, "string", "1.0.1", "Set multiple keys to multiple values, only if none of the keys exist"},
	{"multi", &S::cmd_multi, 1, NS|L|ST|F|AB, 0, 0, 0, "transactions", "1.2.0", "Mark the start of a transaction block"},
	{"object", &S::cmd_object, -2, R, 2, 2, 1, "generic", "2.2.3", "A container for object introspection commands"},
	{"persist", &S::cmd_persist, 2, W|F, 1, 1, 1, "generic", "2.2.0", "Remove the expiration from a key"},
	{"pexpire", &S::cmd_pexpire, -3, W|F, 1, 1, 1, "generic", "2.6.0", "Set a key's time to live in milliseconds"},
	{"pexpireat", &S::cmd_pexpireat, -3, W|F, 1, 1, 1, "generic", "2.6.0", "Set the expiration for a key as a UNIX timestamp specified in milliseconds"},
	{"pexpiretime", &S::cmd_pexpiretime, 2, R|F, 1, 1, 1, "generic", "7.0.0", "Get the expiration Unix timestamp for a key in milliseconds"},
	{"ping", &S::cmd_ping, -1, F, 0, 0, 0, "connection", "1.0.0", "Ping the server"},
	{"psetex", &S::cmd_psetex, 4, W|OOM, 1, 1, 1, "string", "2.6.0", "Set the value and expiration in milliseconds of a key"},
	{"psubscribe", &S::cmd_psubscribe, -2, PS|NS|L|ST, 0, 0, 0, "pubsub", "2.0.0", "Listen for messages published to channels matching the given patterns"},
	{"psync", &S::cmd_sync, -3, A|NS|NM, 0, 0, 0, "server", "2.8.0", "An internal command used in replication"},
	{"pttl", &S::cmd_pttl, 2, R|F, 1, 1, 1, "generic", "2.6.0", "Get the time to live for a key in milliseconds"},
	{"publish", &S::cmd_publish, 3, PS|L|ST|F|MR, 0, 0, 0, "pubsub", "2.0.0", "Post a message to a channel"},
	{"pubsub", &S::cmd_pubsub, -2, PS|L|ST, 0, 0, 0, "pubsub", "2.8.0", "A container for Pub/Sub commands"},
	{"punsubscribe", &S::cmd_punsubscribe, -1, PS|NS|L|ST, 0, 0, 0, "pubsub", "2.0.0", "Stop listening for messages posted to channels matching the given patterns"},
	{"quit", &S::cmd_quit, -1, NS|L|ST|F|NA|AB, 0, 0, 0, "connection", "1.0.0", "Close the connection"},
	{"randomkey", &S::cmd_randomkey, 1, R, 0, 0, 0, "generic", "1.0.0", "Return a random key from the keyspace"},
	{"rename", &S::cmd_rename, 3, W, 1, 2, 1, "generic", "1.0.0", "Rename a key"},
	{"renamenx", &S::cmd_renamenx, 3, W|F, 1, 2, 1, "generic", "1.0.0", "Rename a key, only if the new key does not exist"},
	{"replconf", &S::cmd_replconf, -1, A|NS|L|ST|AB, 0, 0, 0, "server", "3.0.0", "An internal command for configuring the replication stream"},
	{"replicaof", &S::cmd_replicaof, 3, A|NS|ST, 0, 0, 0, "server", "5.0.0", "Make the server a replica of another instance, or promote it as master"},
	{"reset", &S::cmd_reset, 1, NS|L|ST|F|NA|AB, 0, 0, 0, "connection", "6.2.0", "Reset the connection"},
	{"rpop", &S::cmd_rpop, -2, W|F, 1, 1, 1, "list", "1.0.0", "Remove and get the last elements in a list"},
	{"rpoplpush", &S::cmd_rpoplpush, 3, W|OOM, 1, 2, 1, "list", "1.2.0", "Remove the last element in a list, prepend it to another list and return it"},
	{"rpush", &S::cmd_rpush, -3, W|OOM|F, 1, 1, 1, "list", "1.0.0", "Append one or multiple elements to a list"},
	{"rpushx", &S::cmd_rpushx, -3, W|OOM|F, 1, 1, 1, "list", "2.2.0", "Append an element to a list, only if the list exists"},
	{"sadd", &S::cmd_sadd, -3, W|OOM|F, 1, 1, 1, "set", "1.0.0", "Add one or more members to a set"},
	{"save", &S::cmd_save, 1, A|NS|NM, 0, 0, 0, "server", "1.0.0", "Synchronously save the dataset to disk"},
	{"scan", &S::cmd_scan, -2, R, 0, 0, 0, "generic", "2.8.0", "Incrementally iterate the keys space"},
	{"scard", &S::cmd_scard, 2, R|F, 1, 1, 1, "set", "1.0.0", "Get the number of members in a set"},
	{"script", &S::cmd_script, -2, NS, 0, 0, 0, "scripting", "2.6.0", "A container for Lua scripts management commands"},
	{"sdiff", &S::cmd_sdiff, -2, R, 1, -1, 1, "set", "1.0.0", "Subtract multiple sets"},
	{"sdiffstore", &S::cmd_sdiffstore, -3, W|OOM, 1, -1, 1, "set", "1.0.0", "Subtract multiple sets and store the resulting set in a key"},
	{"select", &S::cmd_select, 2, L|ST|F, 0, 0, 0, "connection", "1.0.0", "Change the selected database for the current connection"},
	{"set", &S::cmd_set, -3, W|OOM, 1, 1, 1, "string", "1.0.0", "Set the string value of a key"},
	{"setbit", &S::cmd_setbit, 4, W|OOM, 1, 1, 1, "bitmap", "2.2.0", "Sets or clears the bit at offset in the string value stored at key"},
	{"setex", &S::cmd_setex, 4, W|OOM, 1, 1, 1, "string", "2.0.0", "Set the value and expiration of a key"},
	{"setnx", &S::cmd_setnx, 3, W|OOM|F, 1, 1, 1, "string", "1.0.0", "Set the value of a key, only if the key does not exist"},
	{"setrange", &S::cmd_setrange, 4, W|OOM, 1, 1, 1, "string", "2.2.0", "Overwrite part of a string at key starting at the specified offset"},
	{"shutdown", &S::cmd_shutdown, -1, A|NS|L|ST|NM|AB, 0, 0, 0, "server", "1.0.0", "Synchronously save the dataset to disk and then shut down the server"},
	{"sinter", &S::cmd_sinter, -2, R, 1, -1, 1, "set", "1.0.0", "Intersect multiple sets"},
	{"sintercard", &S::cmd_sintercard, -3, R|MK, 0, 0, 0, "set", "7.0.0", "Intersect multiple sets and return the cardinality of the result"},
	{"sinterstore", &S::cmd_sinterstore, -3, W|OOM, 1, -1, 1, "set", "1.0.0", "Intersect multiple sets and store the resulting set in a key"},
	{"sismember", &S::cmd_sismember, 3, R|F, 1, 1, 1, "set", "1.0.0", "Determine if a given value is a member of a set"},
	{"slaveof", &S::cmd_replicaof, 3, A|NS|ST, 0, 0, 0, "server", "1.0.0", "Make the server a replica of another instance, or promote it as master"},
	{"smembers", &S::cmd_smembers, 2, R, 1, 1, 1, "set", "1.0.0", "Get all the members in a set"},
	{"smismember", &S::cmd_smismember, -3, R|F, 1, 1, 1, "set", "6.2.0", "Returns the membership associated with the given elements for a set"},
	{"smove", &S::cmd_smove, 4, W|F, 1, 2, 1, "set", "1.0.0", "Move a member from one set to another"},
	{"sort", &S::cmd_sort, -2, W|OOM, 1, 1, 1, "generic", "1.0.0", "Sort the elements in a list, set or sorted set"},
	{"sort_ro", &S::cmd_sort_ro, -2, R, 1, 1, 1, "generic", "7.0.0", "Sort the elements in a list, set or sorted set. Read-only variant of SORT."},
	{"spop", &S::cmd_spop, -2, W|F, 1, 1, 1, "set", "1.0.0", "Remove and return one or multiple random members from a set"},
	{"srandmember", &S::cmd_srandmember, -2, R, 1, 1, 1, "set", "1.0.0", "Get one or multiple random members from a set"},
	{"srem", &S::cmd_srem, -3, W|F, 1, 1, 1, "set", "1.0.0", "Remove one or more members from a set"},
	{"strlen", &S::cmd_strlen, 2, R|F, 1, 1, 1, "string", "2.2.0", "Get the length of the value stored in a key"},
	{"subscribe", &S::cmd_subscribe, -2, PS|NS|L|ST, 0, 0, 0, "pubsub", "2.0.0", "Listen for messages published to the given channels"},
	{"substr", &S::cmd_getrange, 4, R, 1, 1, 1, "string", "1.0.0", "Get a substring of the string stored at a key"},
	{"sunion", &S::cmd_sunion, -2, R, 1, -1, 1, "set", "1.0.0", "Add multiple sets"},
	{"sunionstore", &S::cmd_sunionstore, -3, W|OOM, 1, -1, 1, "set", "1.0.0", "Add multiple sets and store the resulting set in a key"},
	{"swapdb", &S::cmd_swapdb, 3, W|F, 0, 0, 0, "server", "4.0.0", "Swaps two Redis databases"},
	{"sync", &S::cmd_sync, 1, A|NS|NM, 0, 0, 0, "server", "1.0.0", "Internal command used for replication"},
	{"time", &S::cmd_time, 1, L|ST|F, 0, 0, 0, "server", "2.6.0", "Return the current server time"},
	{"touch", &S::cmd_touch, -2, R|F, 1, -1, 1, "generic", "3.2.1", "Alters the last access time of a key(s). Returns the number of existing keys specified."},
	{"ttl", &S::cmd_ttl, 2, R|F, 1, 1, 1, "generic", "1.0.0", "Get the time to live for a key in seconds"},
	{"type", &S::cmd_type, 2, R|F, 1, 1, 1, "generic", "1.0.0", "Determine the type stored at key"},
	{"unlink", &S::cmd_del, -2, W|F, 1, -1, 1, "generic", "4.0.0", "Delete a key asynchronously in another thread. Otherwise it is just as DEL, but non blocking."},
	{"unsubscribe", &S::cmd_unsubscribe, -1, PS|NS|L|ST, 0, 0, 0, "pubsub", "2.0.0", "Stop listening for messages posted to the given channels"},
	{"unwatch", &S::cmd_unwatch, 1, NS|L|ST|F|AB, 0, 0, 0, "transactions", "2.2.0", "Forget about all watched keys"},
	{"wait", &S::cmd_wait, 3, NS, 0, 0, 0, "generic", "3.0.0", "Wait for the synchronous replication of all the write commands sent in the context of the current connection"},
	{"waitaof", &S::cmd_waitaof, 4, NS, 0, 0, 0, "generic", "7.2.0", "Wait for all write commands sent by the client to be fsynced to the AOF of the local host and/or replicas"},
	{"watch", &S::cmd_watch, -2, NS|L|ST|F|AB, 1, -1, 1, "transactions", "2.2.0", "Watch the given keys to determine execution of the MULTI/EXEC block"},
};

/// Open-addressed table by FNV-1a of the lower-cased name: one short hash
/// loop and usually one compare per lookup.
constexpr std::size_t kSlots = 1024;

inline std::uint32_t name_hash(const char* p, std::size_t n) noexcept
{
	std::uint32_t h = 2166136261u;
	for (std::size_t i = 0; i < n; ++i)
		h = (h ^ static_cast<unsigned char>(p[i])) * 16777619u;
	return h;
}

struct Index {
	const Cmd* slot[kSlots] = {};
	Index()
	{
		for (const Cmd& c : kTable) {
			std::size_t i = name_hash(c.name, std::strlen(c.name)) & (kSlots - 1);
			while (slot[i])
				i = (i + 1) & (kSlots - 1);
			slot[i] = &c;
		}
	}
};

const Index kIndex;

[[maybe_unused]] const bool kSorted = [] {
	return std::is_sorted(std::begin(kTable), std::end(kTable),
			      [](const Cmd& a, const Cmd& b) { return std::string_view(a.name) < b.name; });
}();

}  // namespace

std::span<const Cmd> command_table() noexcept
{
	return kTable;
}

const Cmd* find_command(std::string_view name) noexcept
{
	char lc[32];
	if (name.size() > sizeof lc)
		return nullptr;
	for (std::size_t i = 0; i < name.size(); ++i) {
		const char ch = name[i];
		lc[i] = (ch >= 'A' && ch <= 'Z') ? static_cast<char>(ch - 'A' + 'a') : ch;
	}
	for (std::size_t i = name_hash(lc, name.size()) & (kSlots - 1);; i = (i + 1) & (kSlots - 1)) {
		const Cmd* c = kIndex.slot[i];
		if (!c)
			return nullptr;
		if (std::strncmp(c->name, lc, name.size()) == 0 && c->name[name.size()] == '\0')
			return c;
	}
}

}  // namespace daxnet::kv
