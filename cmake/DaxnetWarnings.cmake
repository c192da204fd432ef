# SPDX-License-Identifier: BSD-2-Clause
# daxnet_target_defaults(<target>): warnings, -Werror in CI, sanitizers.
set(DAXNET_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
    -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wnull-dereference
    -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough)

if(DAXNET_SANITIZE)
  string(REPLACE ";" "," _san "${DAXNET_SANITIZE}")
  add_compile_options(-fsanitize=${_san} -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=${_san})
endif()

function(daxnet_target_defaults target)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${DAXNET_WARNINGS}>)
  if(DAXNET_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
