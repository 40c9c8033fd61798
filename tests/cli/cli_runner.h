// Runs the `qdit` executable under test (QDIT_CLI_PATH) as a child process, as a user would, and
// captures its exit code and combined stdout + stderr.
#pragma once
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace qdit::cli_test {

struct RunResult {
  int code;
  std::string output;
};

inline RunResult run(const std::string& args) {
  const std::string cmd = std::string(QDIT_CLI_PATH) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf{};
  while (p && fgets(buf.data(), buf.size(), p)) out += buf.data();
  const int status = p ? pclose(p) : -1;
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

inline bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

}  // namespace qdit::cli_test
