# Fails the build when a JSON file does not parse, naming the file and the problem.
#
#   cmake -DFILE=web/serve/openapi.json -P check_json.cmake
cmake_minimum_required(VERSION 3.25)
if(NOT DEFINED FILE)
  message(FATAL_ERROR "check_json.cmake: -DFILE=... is required")
endif()
file(READ "${FILE}" text)
string(JSON type ERROR_VARIABLE error TYPE "${text}")
if(error)
  message(FATAL_ERROR "${FILE}: invalid JSON: ${error}")
endif()
if(NOT type STREQUAL "OBJECT")
  message(FATAL_ERROR "${FILE}: the top level must be a JSON object, not ${type}")
endif()
