// `qdit bench`: runs `qdit generate` once per combination of batch, quantization and offload mode
// (each in a child process, so every run starts from an empty heap and its own peak RSS), then
// prints a markdown table and writes the rows as JSON.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "qdit/core/error.h"

namespace qdit::cli {

namespace {

namespace fs = std::filesystem;

void usage() {
  std::printf(
      "usage: qdit bench --model DIR [--quant-set A,B,...] [--offload-set none,model,blocks] [--batch 1,4]\n"
      "                  [--steps N] [--width W --height H] [--dtype f32|bf16] [--offload-group N]\n"
      "                  [--prompt TEXT] [--threads N] [--json FILE.json] [--md FILE.md]\n"
      "One `qdit generate` child run per combination; prints a markdown table (peak RSS measured per run,\n"
      "the planner's prediction, latency, s/step) and writes the rows to --json (default qdit-bench.json).\n"
      "Quantization specs are those of --quant (\"none\" for float); separate them with ';' or ','\n"
      "(comp=SCHEME pairs that follow each other stay one spec: text_encoder=int4wo,transformer=int8wo).\n");
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, sep);)
    if (!item.empty()) out.push_back(item);
  return out;
}

// "none,int8wo,text_encoder=int4wo,transformer=int8wo" -> none | int8wo | text_encoder=...,transformer=...
std::vector<std::string> split_quant_set(const std::string& s) {
  if (s.find(';') != std::string::npos) return split(s, ';');
  std::vector<std::string> out;
  for (const std::string& item : split(s, ',')) {
    const bool pair = item.find('=') != std::string::npos;
    if (pair && !out.empty() && out.back().find('=') != std::string::npos) out.back() += "," + item;
    else out.push_back(item);
  }
  return out;
}

// Runs argv with stdout and stderr sent to `log`; returns the exit status.
int run_child(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  QDIT_CHECK(pid >= 0, "[bench] fork failed");
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string last_line(const std::string& path) {
  std::ifstream f(path);
  std::string line, last;
  while (std::getline(f, line))
    if (!line.empty()) last = line;
  return last;
}

std::string fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  std::string model, quant_set = "none", offload_set = "none,model,blocks", batches = "1", json_out = "qdit-bench.json";
  std::string md_out, prompt = "A small cafe at the corner of a street, watercolor painting", dtype = "f32";
  std::vector<std::string> passthrough;  // size, steps, threads, group
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      QDIT_CHECK(i + 1 < argc, "[bench] ", a, " needs a value");
      return argv[++i];
    };
    if (a == "--model") model = value();
    else if (a == "--quant-set") quant_set = value();
    else if (a == "--offload-set") offload_set = value();
    else if (a == "--batch") batches = value();
    else if (a == "--json") json_out = value();
    else if (a == "--md") md_out = value();
    else if (a == "--prompt") prompt = value();
    else if (a == "--dtype") dtype = value();
    else if (a == "--steps" || a == "--width" || a == "--height" || a == "--threads" || a == "--offload-group" ||
             a == "--max-sequence-length" || a == "--seed") {
      passthrough.push_back(a);
      passthrough.push_back(value());
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else {
      fail("[bench] unknown option ", a, " (see qdit bench --help)");
    }
  }
  QDIT_CHECK(!model.empty(), "[bench] --model DIR is required");
  const std::string exe = fs::read_symlink("/proc/self/exe").string();
  const fs::path tmp = fs::temp_directory_path() / ("qdit_bench_" + std::to_string(::getpid()));
  fs::create_directories(tmp);

  nlohmann::json rows = nlohmann::json::array();
  std::ostringstream md;
  md << "| batch | quantization | text encoder quantized | offload | peak memory (GB) | predicted (GB) | latency (s) "
        "| s/step |\n|---:|---|---|---|---:|---:|---:|---:|\n";
  std::printf("%s", md.str().c_str());
  for (const std::string& batch : split(batches, ','))
    for (const std::string& quant : split_quant_set(quant_set))
      for (const std::string& offload : split(offload_set, ',')) {
        const std::string report = (tmp / "report.json").string(), log = (tmp / "log.txt").string();
        std::vector<std::string> args{exe,      "generate", "--model",  model,  "--prompt", prompt,
                                      "--batch", batch,      "--dtype",  dtype,  "--offload", offload,
                                      "--out",   (tmp / "image.png").string(), "--report", report};
        if (quant != "none") args.insert(args.end(), {"--quant", quant});
        args.insert(args.end(), passthrough.begin(), passthrough.end());
        fs::remove(report);
        const int code = run_child(args, log);
        nlohmann::json row = {{"batch", std::stoi(batch)}, {"quant", quant}, {"offload", offload}, {"dtype", dtype}};
        std::string line;
        if (code != 0 || !fs::exists(report)) {
          row["error"] = last_line(log);
          line = "| " + batch + " | " + quant + " | | " + offload + " | failed: " + row["error"].get<std::string>() +
                 " | | | |\n";
        } else {
          std::ifstream in(report);
          const nlohmann::json r = nlohmann::json::parse(in);
          bool te_quant = false;
          for (const auto& c : r["components"])
            if (c["name"].get<std::string>().rfind("text_encoder", 0) == 0 && c["quant"] != "none") te_quant = true;
          const double peak = r["peak_rss_bytes"].get<double>() / 1e9;
          const double predicted = r.contains("predicted_peak_rss_bytes") ? r["predicted_peak_rss_bytes"].get<double>() / 1e9 : 0;
          row.update({{"text_encoder_quantized", te_quant},
                      {"peak_rss_bytes", r["peak_rss_bytes"]},
                      {"predicted_peak_rss_bytes", r.value("predicted_peak_rss_bytes", 0.0)},
                      {"latency_seconds", r["total_seconds"]},
                      {"seconds_per_step", r["seconds_per_step"]},
                      {"steps", r["settings"]["steps"]},
                      {"width", r["settings"]["width"]},
                      {"height", r["settings"]["height"]},
                      {"phases", r["phases"]}});
          line = "| " + batch + " | " + quant + " | " + (te_quant ? "yes" : "no") + " | " + offload + " | " +
                 fixed(peak, 2) + " | " + fixed(predicted, 2) + " | " + fixed(r["total_seconds"].get<double>(), 1) +
                 " | " + fixed(r["seconds_per_step"].get<double>(), 2) + " |\n";
        }
        rows.push_back(row);
        md << line;
        std::printf("%s", line.c_str());
        std::fflush(stdout);
      }
  fs::remove_all(tmp);
  std::ofstream(json_out) << rows.dump(2) << "\n";
  if (!md_out.empty()) std::ofstream(md_out) << md.str();
  std::fprintf(stderr, "wrote %s%s%s\n", json_out.c_str(), md_out.empty() ? "" : " and ", md_out.c_str());
  return 0;
}

}  // namespace qdit::cli
