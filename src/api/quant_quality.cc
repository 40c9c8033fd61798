#include "qdit/api/quant_quality.h"

#include <cmath>
#include <cstdio>
#include <algorithm>
#include <map>
#include <tuple>

#include "qdit/api/golden_case.h"
#include "qdit/core/error.h"

namespace qdit::api {

namespace {

const char* const kTextEncoders = "text_encoder+text_encoder_2+text_encoder_3";

bool runs_text_encoders(const GoldenCase& c) { return c.has_input("prompt_utf8"); }

double snr_of(const CheckReport& r, const std::string& name) {
  for (const auto& t : r.tensors)
    if (t.name == name) return t.snr_db;
  fail("[quality] ", r.case_name, " produced no '", name, "' to compare");
}

std::string base_name(const std::string& dir) {
  std::string d = dir;
  while (!d.empty() && d.back() == '/') d.pop_back();
  return d.substr(d.find_last_of('/') + 1);
}

}  // namespace

std::vector<QualityRow> measure_quant_quality(const std::vector<std::string>& case_dirs,
                                              const std::vector<std::string>& schemes,
                                              const std::function<void(int, int)>& progress) {
  struct Job {
    std::string dir, target, spec_suffix;
  };
  std::vector<Job> jobs;
  for (const auto& dir : case_dirs) {
    GoldenCase c = GoldenCase::open(dir);
    QDIT_CHECK(c.kind() == "pipeline", "[quality] ", dir, " is a ", c.kind(), " case, not a pipeline case");
    jobs.push_back({dir, "transformer", "@transformer"});
    if (runs_text_encoders(c)) jobs.push_back({dir, "text encoders", std::string("@") + kTextEncoders});
  }
  std::vector<QualityRow> rows;
  const int total = static_cast<int>(jobs.size() * schemes.size());
  int done = 0;
  for (const auto& job : jobs) {
    for (const auto& scheme : schemes) {
      CheckOptions opt;
      opt.quant = quant::PipelineQuantConfig::parse_spec(scheme + job.spec_suffix);
      CheckReport r = run_case(job.dir, opt);
      QualityRow row{base_name(job.dir), scheme, job.target, snr_of(r, "latents_final"), snr_of(r, "images_np")};
      for (const auto& t : r.tensors)
        if (t.name.rfind("encode_prompt.", 0) == 0 && t.name.find("embeds") != std::string::npos)
          row.embeds_snr_db = std::min(row.embeds_snr_db, t.snr_db);
      rows.push_back(row);
      if (progress) progress(++done, total);
    }
  }
  return rows;
}

std::string quality_markdown(const std::vector<QualityRow>& rows) {
  std::vector<std::string> targets, cases, schemes;
  auto add = [](std::vector<std::string>& v, const std::string& s) {
    if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
  };
  std::map<std::tuple<std::string, std::string, std::string>, const QualityRow*> at;
  for (const auto& r : rows) {
    add(targets, r.target);
    add(cases, r.case_name);
    add(schemes, r.scheme);
    at[{r.target, r.scheme, r.case_name}] = &r;
  }
  auto db = [](double v) {
    char b[32];
    if (std::isinf(v)) return std::string("inf");
    std::snprintf(b, sizeof b, "%.1f", v);
    return std::string(b);
  };
  std::string md;
  for (const auto& target : targets) {
    const bool text = target != "transformer";
    md += "\n### " + target + " quantized\n\nSNR in dB vs float32, `final latents / image" +
          std::string(text ? " (prompt embeddings)" : "") + "`.\n\n| scheme |";
    std::vector<std::string> cols;
    for (const auto& c : cases)
      if (at.count({target, schemes.front(), c})) cols.push_back(c);
    for (const auto& c : cols) md += " " + c + " |";
    md += "\n|---|";
    for (size_t i = 0; i < cols.size(); ++i) md += "---|";
    md += "\n";
    for (const auto& s : schemes) {
      md += "| `" + s + "` |";
      for (const auto& c : cols) {
        auto it = at.find({target, s, c});
        if (it == at.end()) {
          md += " |";
          continue;
        }
        md += " " + db(it->second->latents_snr_db) + " / " + db(it->second->image_snr_db);
        if (text) md += " (" + db(it->second->embeds_snr_db) + ")";
        md += " |";
      }
      md += "\n";
    }
  }
  return md;
}

}  // namespace qdit::api
