# Installs the npm packages of web/ (web/package.json, pinned by web/package-lock.json)
# into web/node_modules when they are missing or older than the lock file, then touches
# STAMP. The build embeds files from them (swagger-ui-dist for the /docs page of
# `recforge serve`), so they are needed at build time only, never at run time.
#
#   cmake -DWEB_DIR=web -DSTAMP=out/npm.stamp -P npm_ci.cmake
#
# `--ignore-scripts`: nothing from the registry runs on the build machine (swagger-ui-dist
# depends on @scarf/scarf, whose install script would phone home).
cmake_minimum_required(VERSION 3.25)
foreach(var WEB_DIR STAMP)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "npm_ci.cmake: -D${var}=... is required")
  endif()
endforeach()

set(installed_lock "${WEB_DIR}/node_modules/.package-lock.json")
if(NOT EXISTS "${installed_lock}" OR "${WEB_DIR}/package-lock.json" IS_NEWER_THAN "${installed_lock}")
  find_program(NPM npm)
  if(NOT NPM)
    message(FATAL_ERROR "npm is needed once to fetch web/node_modules (swagger-ui-dist); "
                        "install it with scripts/install-deps.sh or `apt-get install npm`")
  endif()
  message(STATUS "npm ci --prefix ${WEB_DIR}")
  execute_process(
    COMMAND "${NPM}" ci --ignore-scripts --no-audit --no-fund --prefix "${WEB_DIR}"
    WORKING_DIRECTORY "${WEB_DIR}"
    RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "npm ci --prefix ${WEB_DIR} failed (${result}); is the npm registry reachable?")
  endif()
  file(TOUCH "${installed_lock}")
endif()
file(TOUCH "${STAMP}")
