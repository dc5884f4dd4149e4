# cmake --install (GNUInstallDirs layout):
#   include/recur/...                    public headers and the generated version.h
#   lib/librecur.so.X.Y.Z (+ links)      the shared library, SONAME librecur.so.X.Y.Z
#   lib/librecur_<layer>.a               the static layer libraries (core ... music)
#   lib/cmake/recur/                     recurConfig.cmake, recurConfigVersion.cmake, recurTargets
#   lib/pkgconfig/recur.pc               shared; recur-static.pc links the static layers
#   bin/recur, share/man/man1/recur.1, share/bash-completion/completions/recur
# scripts/install_check.sh installs into a temporary prefix and builds tests/consumers/ against it.
include(CMakePackageConfigHelpers)

set(RECUR_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/recur)

install(DIRECTORY include/recur DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
install(FILES ${RECUR_GENERATED_INCLUDE_DIR}/recur/version.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/recur)

# The `recur` target (all static layers) is exported as recur::recur_static, the shared library as
# recur::recur_shared; recurConfig.cmake makes recur::recur one of the two.
set_target_properties(recur PROPERTIES EXPORT_NAME recur_static)
install(TARGETS ${RECUR_LAYER_TARGETS} recur recur_shared EXPORT recurTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT recurTargets NAMESPACE recur:: DESTINATION ${RECUR_CMAKE_DIR})
if(TARGET DNNL::dnnl AND RECUR_ONEDNN)
  set(RECUR_WITH_ONEDNN ON)
else()
  set(RECUR_WITH_ONEDNN OFF)
endif()
configure_package_config_file(cmake/recurConfig.cmake.in ${PROJECT_BINARY_DIR}/recurConfig.cmake
                              INSTALL_DESTINATION ${RECUR_CMAKE_DIR})
# Before 1.0 a minor release may break the API, so only the same major.minor is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/recurConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/recurConfig.cmake ${PROJECT_BINARY_DIR}/recurConfigVersion.cmake
        DESTINATION ${RECUR_CMAKE_DIR})

# pkg-config: the prefix is found from the .pc file's own place (${pcfiledir}), so the files are
# right for any `cmake --install --prefix`, not only for the CMAKE_INSTALL_PREFIX configured here.
file(RELATIVE_PATH RECUR_PC_PREFIX_FROM_PCDIR /root/${CMAKE_INSTALL_LIBDIR}/pkgconfig /root)
string(REGEX REPLACE "/$" "" RECUR_PC_PREFIX_FROM_PCDIR "${RECUR_PC_PREFIX_FROM_PCDIR}")
if(RECUR_WITH_ONEDNN)
  set(RECUR_PC_DNNL -ldnnl)  # Debian's libdnnl-dev ships no .pc file
else()
  set(RECUR_PC_DNNL "")
endif()
set(RECUR_PC_MPI "")  # the MPI library by path, as src/CMakeLists.txt links it (no .pc needed)
if(RECUR_MPI AND MPI_C_FOUND)
  list(JOIN MPI_C_LIBRARIES " " RECUR_PC_MPI)
endif()
configure_file(cmake/recur.pc.in ${PROJECT_BINARY_DIR}/recur.pc @ONLY)
configure_file(cmake/recur-static.pc.in ${PROJECT_BINARY_DIR}/recur-static.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/recur.pc ${PROJECT_BINARY_DIR}/recur-static.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

install(TARGETS recur_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES scripts/completion/recur.bash DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
        RENAME recur)

# The man page is `recur --help` run through help2man (Debian: help2man, scripts/setup.sh), so it
# cannot drift from the CLI. Without help2man the build says so and installs no man page.
find_program(RECUR_HELP2MAN help2man)
if(RECUR_HELP2MAN AND NOT CMAKE_CROSSCOMPILING)
  set(recur_man ${PROJECT_BINARY_DIR}/recur.1)
  add_custom_command(OUTPUT ${recur_man}
    COMMAND ${RECUR_HELP2MAN} --no-info --no-discard-stderr
            "--name=recurrent sequence models (RNN, GRU, LSTM)" --output=${recur_man} $<TARGET_FILE:recur_cli>
    DEPENDS recur_cli
    COMMENT "Generating the man page recur.1 from recur --help (help2man)" VERBATIM)
  add_custom_target(recur_man ALL DEPENDS ${recur_man})
  install(FILES ${recur_man} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
else()
  message(STATUS "help2man not found (scripts/setup.sh build installs it): no man page is built or installed")
endif()
