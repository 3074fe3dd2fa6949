# deploy/man/manpage.cmake - write a program's man page from its own --help.
#
#   cmake -DPROG=/path/to/kpistream -DNAME=kpistream -DSUMMARY="one line"
#         [-DCONFIG=ON] [-DEXTRA=file.roff] -DOUT=kpistream.1 -P manpage.cmake
#
# The man page is not written by hand: like help2man, this runs `PROG --help`
# and `PROG --version` and turns the usage text into roff, so the page says
# exactly what --help says.  The text is read as the GNU-style layout both
# programs use (cmd/kpistream.c, cmd/kpistream-gen.c: usage()):
#
#   usage: prog ...                         -> SYNOPSIS (one line each,
#          prog ...                            continuation lines indented)
#   free text                               -> DESCRIPTION
#     -c, --config FILE   help text         -> OPTIONS, one .TP per option;
#                         more help text       deeper-indented lines continue it
#   Exit codes: ... / Exit status: ...      -> EXIT STATUS
#   Configuration keys:                     -> CONFIGURATION, taken from
#     (the key list)                           `PROG --help-config` (the same
#                                              key table, as Markdown rows)
#   any other paragraph                     -> DESCRIPTION, lines indented by
#                                              two spaces kept as examples
#
# EXTRA is a roff file appended as is (sections only a man page has: FILES,
# SEE ALSO).
cmake_minimum_required(VERSION 3.18)
foreach(v PROG NAME SUMMARY OUT)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "manpage.cmake: -D${v}=... is required")
  endif()
endforeach()

function(run_prog out)
  execute_process(COMMAND ${PROG} ${ARGN} OUTPUT_VARIABLE text RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "manpage.cmake: ${PROG} ${ARGN} exited with ${rc}")
  endif()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# CMake lists split on ';' and treat '\' and brackets specially: park those
# characters as control bytes while the text is a list, restore them in the
# roff escaping below.
string(ASCII 30 SEMI)
string(ASCII 29 BSLASH)
string(ASCII 28 LBR)
string(ASCII 27 RBR)
function(text_to_lines text out)
  string(REPLACE "\\" "${BSLASH}" text "${text}")
  string(REPLACE ";" "${SEMI}" text "${text}")
  string(REPLACE "[" "${LBR}" text "${text}")
  string(REPLACE "]" "${RBR}" text "${text}")
  string(REGEX REPLACE "\n$" "" text "${text}")
  string(REPLACE "\n" ";" lines "${text}")
  set(${out} "${lines}" PARENT_SCOPE)
endfunction()

# Text -> roff: restore the parked characters, escape backslashes, and keep a
# line from starting with a control character.  Options named in prose get
# minus signs, so they can be copied from the page.
function(roff_escape text out)
  string(REPLACE "${BSLASH}" "\\e" text "${text}")
  string(REPLACE "${SEMI}" ";" text "${text}")
  string(REPLACE "${LBR}" "[" text "${text}")
  string(REPLACE "${RBR}" "]" text "${text}")
  if(text MATCHES "^[.']")
    set(text "\\&${text}")
  endif()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()
function(roff text out)
  roff_escape("${text}" text)
  string(REPLACE "--" "\\-\\-" text "${text}")
  # A '-' starting a word, the line's first included: the line is matched
  # behind a space (no "^" in REGEX REPLACE: CMake anchors it again after
  # every match), which is then dropped.
  string(REGEX REPLACE "([ (])-([A-Za-z0-9])" "\\1\\\\-\\2" text " ${text}")
  string(SUBSTRING "${text}" 1 -1 text)
  set(${out} "${text}" PARENT_SCOPE)
endfunction()
# The same for words a reader types (options, keys): every '-' a minus sign.
function(roff_literal text out)
  roff_escape("${text}" text)
  string(REPLACE "-" "\\-" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

run_prog(help --help)
run_prog(version --version)
string(REGEX REPLACE "\n.*" "" version "${version}")
text_to_lines("${help}" lines)

string(TOUPPER "${NAME}" title)
roff_literal("${NAME}" name_r)
roff("${SUMMARY}" summary_r)
# No date: the page is the same for the same program (reproducible builds).
set(man ".TH ${title} 1 \"\" \"${version}\" \"User Commands\"\n")
string(APPEND man ".SH NAME\n${name_r} \\- ${summary_r}\n.SH SYNOPSIS\n")

set(state synopsis) # synopsis -> description -> options -> tail
set(descr "")
set(options "")
set(tail "")
set(exit_status "")
set(in_config OFF)
set(literal OFF)
set(target tail)
foreach(line IN LISTS lines)
  if(state STREQUAL "synopsis")
    set(s "")
    if(line MATCHES "^usage: +(.*)$")
      set(s "${CMAKE_MATCH_1}")
    elseif(line MATCHES "^       +([^ ].*)$")
      set(s "${CMAKE_MATCH_1}")
    endif()
    if(NOT s STREQUAL "")
      string(REGEX MATCH "^[^ ]+" prog "${s}")
      string(LENGTH "${prog}" n)
      string(SUBSTRING "${s}" ${n} -1 args)
      string(STRIP "${args}" args)
      roff_literal("${prog}" prog_r)
      roff_literal("${args}" args_r)
      string(APPEND man ".B ${prog_r}\n${args_r}\n.br\n")
      continue()
    endif()
    set(state description)
  endif()
  if(state STREQUAL "description" OR state STREQUAL "options")
    # An option: up to six spaces, then '-'; its help after a gap of two or
    # more spaces, or on the next lines.
    if(line MATCHES "^ ? ? ? ? ? ?(-[^ ].*)$")
      set(state options)
      set(opt "${CMAKE_MATCH_1}")
      set(text "")
      if(opt MATCHES "^([^ ]+( [^ ]+)*)  +(.*)$")
        set(opt "${CMAKE_MATCH_1}")
        set(text "${CMAKE_MATCH_3}")
      endif()
      # -c, --config FILE: the option bold, what follows it italic.
      string(REPLACE " " ";" words "${opt}")
      set(tag "")
      foreach(w IN LISTS words)
        roff_literal("${w}" w_r)
        if(w MATCHES "^-")
          string(REGEX MATCH "^[^,]+" bold "${w_r}")
          string(REGEX MATCH ",$" comma "${w_r}")
          set(w_r "\\fB${bold}\\fR${comma}")
        else()
          set(w_r "\\fI${w_r}\\fR")
        endif()
        string(APPEND tag " ${w_r}")
      endforeach()
      string(STRIP "${tag}" tag)
      string(APPEND options ".TP\n${tag}\n")
      if(NOT text STREQUAL "")
        roff("${text}" text_r)
        string(APPEND options "${text_r}\n")
      endif()
      continue()
    endif()
    if(state STREQUAL "options" AND line MATCHES "^        +([^ ].*)$")
      roff("${CMAKE_MATCH_1}" text_r)
      string(APPEND options "${text_r}\n")
      continue()
    endif()
    if(state STREQUAL "description")
      if(line STREQUAL "")
        string(APPEND descr ".PP\n")
      else()
        roff("${line}" text_r)
        string(APPEND descr "${text_r}\n")
      endif()
      continue()
    endif()
    set(state tail)
  endif()
  # After the options: paragraphs.
  if(line STREQUAL "")
    set(in_config OFF)
    if(literal)
      string(APPEND tail ".fi\n.RE\n")
      set(literal OFF)
    endif()
    set(target tail)
    continue()
  endif()
  if(in_config)
    continue() # the key list: CONFIGURATION comes from --help-config
  endif()
  if(line MATCHES "^Configuration keys:")
    set(in_config ON)
    continue()
  endif()
  if(line MATCHES "^Exit (codes|status): *(.*)$")
    set(target exit_status)
    set(line "${CMAKE_MATCH_2}")
  endif()
  if(line MATCHES "^  +([^ ].*)$")
    if(NOT literal)
      string(APPEND ${target} ".RS\n.nf\n")
      set(literal ON)
    endif()
    roff("${CMAKE_MATCH_1}" text_r)
  else()
    if(literal)
      string(APPEND ${target} ".fi\n.RE\n")
      set(literal OFF)
    endif()
    roff("${line}" text_r)
  endif()
  string(APPEND ${target} "${text_r}\n")
endforeach()
if(literal)
  string(APPEND ${target} ".fi\n.RE\n")
endif()

string(REGEX REPLACE "^(\\.PP\n)+" "" descr "${descr}")
string(REGEX REPLACE "(\\.PP\n)+$" "" descr "${descr}")
string(APPEND man ".SH DESCRIPTION\n${descr}${tail}")
string(APPEND man ".SH OPTIONS\n${options}")

if(CONFIG)
  run_prog(config_md --help-config)
  text_to_lines("${config_md}" rows)
  string(APPEND man ".SH CONFIGURATION\n"
         "Every key, as \\fB\\-\\-help\\-config\\fR prints it; durations take "
         "ms, s, m, h, d.\n")
  foreach(row IN LISTS rows)
    # | `section.key` | type | `default` | description |
    if(NOT row MATCHES "^\\| `([^`]+)` \\| ([^|]*) \\| `?([^`|]*)`? *\\| (.*) \\|$")
      continue() # the header and its rule
    endif()
    set(key "${CMAKE_MATCH_1}")
    set(type "${CMAKE_MATCH_2}")
    set(def "${CMAKE_MATCH_3}")
    set(desc "${CMAKE_MATCH_4}")
    roff_literal("${key}" key_r)
    roff("${desc}" desc_r)
    if(def STREQUAL "")
      set(tag "\\fB${key_r}\\fR (${type})")
    else()
      roff_literal("${def}" def_r)
      set(tag "\\fB${key_r}\\fR (${type}, default \\fI${def_r}\\fR)")
    endif()
    string(APPEND man ".TP\n${tag}\n${desc_r}\n")
  endforeach()
endif()

if(NOT exit_status STREQUAL "")
  string(APPEND man ".SH \"EXIT STATUS\"\n${exit_status}")
endif()
if(DEFINED EXTRA AND NOT EXTRA STREQUAL "")
  file(READ "${EXTRA}" extra)
  string(APPEND man "${extra}")
endif()
file(WRITE "${OUT}" "${man}")
