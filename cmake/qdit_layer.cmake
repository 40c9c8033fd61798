# qdit_add_layer(NAME <layer> [SOURCES ...] [DEPS ...] [PRIVATE_DEPS ...])
#
# Every layer folder becomes one static library, qdit_<layer>. Its headers are reachable as
# "qdit/<layer>/x.h" only through a per-layer include root that holds a single link to the
# folder, so a target sees exactly the headers of the layers it links: including a header of
# a higher layer fails to compile instead of silently creating a cycle.
function(qdit_add_layer)
  cmake_parse_arguments(L "" "NAME;DIR" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  if(NOT L_DIR)
    set(L_DIR ${CMAKE_CURRENT_SOURCE_DIR})
  endif()
  set(root ${CMAKE_BINARY_DIR}/include_roots/${L_NAME})
  file(MAKE_DIRECTORY ${root}/qdit)
  if(NOT EXISTS ${root}/qdit/${L_NAME})
    file(CREATE_LINK ${L_DIR} ${root}/qdit/${L_NAME} SYMBOLIC)
  endif()
  add_library(qdit_${L_NAME} STATIC ${L_SOURCES})
  target_include_directories(qdit_${L_NAME} PUBLIC ${root})
  target_link_libraries(qdit_${L_NAME} PUBLIC ${L_DEPS} PRIVATE ${L_PRIVATE_DEPS})
endfunction()
