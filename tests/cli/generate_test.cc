// `qdit generate` end to end: given the golden case's prompt, settings and initial latents, the
// PNG it writes must be within 1/255 of the image diffusers recorded; bad input must fail cleanly.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "qdit/io/json_config.h"
#include "qdit/io/png_writer.h"
#include "qdit/io/safetensors.h"

#include "cli_runner.h"

namespace {

using qdit::cli_test::contains;
using qdit::cli_test::run;
using qdit::cli_test::RunResult;

const std::string kGolden = std::string(QDIT_TEST_DATA_DIR) + "/golden/";

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("qdit_cli_" + std::to_string(getpid()) + "_" + name)).string();
}

TEST(Generate, PixArtTextCaseMatchesRecordedImageWithin1Of255) {
  const std::string case_dir = kGolden + "pipeline_pixart_sigma_text";
  auto info = qdit::io::JsonConfig::load(case_dir + "/case.json");
  auto kw = info.sub("call_kwargs");
  const std::string out = temp_path("pixart.png");
  const std::string args = "generate --model " + case_dir + "/pipeline --prompt " +
                           quote(kw.get<std::string>("prompt")) + " --negative-prompt " +
                           quote(kw.get<std::string>("negative_prompt")) + " --steps " +
                           std::to_string(kw.get<int>("num_inference_steps")) + " --guidance " +
                           std::to_string(kw.get<double>("guidance_scale")) + " --width " +
                           std::to_string(kw.get<int>("width")) + " --height " + std::to_string(kw.get<int>("height")) +
                           " --max-sequence-length " + std::to_string(kw.get<int>("max_sequence_length")) +
                           " --latents " + case_dir + "/inputs.safetensors --out " + out;
  RunResult r = run(args);
  ASSERT_EQ(r.code, 0) << r.output;
  qdit::io::PngImage img = qdit::io::read_png(out);
  auto ref = qdit::io::SafetensorsFile::open(case_dir + "/outputs.safetensors")->tensor("images_np");  // [1,H,W,3]
  ASSERT_EQ(img.height, ref.size(1));
  ASSERT_EQ(img.width, ref.size(2));
  std::vector<float> v = ref.to_vector();
  int worst = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const int want = static_cast<int>(std::nearbyint(v[i] * 255.0f));
    worst = std::max(worst, std::abs(want - static_cast<int>(img.rgb[i])));
  }
  EXPECT_LE(worst, 1);
  ASSERT_TRUE(img.text.count("parameters"));
  EXPECT_NE(img.text["parameters"].find("Steps: 4"), std::string::npos) << img.text["parameters"];
  EXPECT_NE(img.text["parameters"].find("Café"), std::string::npos);
  std::filesystem::remove(out);
}

TEST(Generate, DefaultModelWritesAPng) {
  const std::string out = temp_path("default.png");
  RunResult r = run("generate --prompt 'a red fox' --steps 2 --seed 7 --width 32 --height 32 --out " + out);
  ASSERT_EQ(r.code, 0) << r.output;
  qdit::io::PngImage img = qdit::io::read_png(out);
  EXPECT_EQ(img.width, 32);
  EXPECT_EQ(img.height, 32);
  // Same seed, same image.
  const std::string out2 = temp_path("default2.png");
  ASSERT_EQ(run("generate --prompt 'a red fox' --steps 2 --seed 7 --width 32 --height 32 --out " + out2).code, 0);
  EXPECT_EQ(qdit::io::read_png(out2).rgb, img.rgb);
  std::filesystem::remove(out);
  std::filesystem::remove(out2);
}

TEST(Generate, BadInputFailsWithAClearMessage) {
  RunResult r = run("generate --model /nonexistent/model --prompt x --out /tmp/x.png");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("/nonexistent/model"), std::string::npos) << r.output;
  r = run("generate --prompt x --steps banana --out /tmp/x.png");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("--steps"), std::string::npos) << r.output;
  r = run("generate --prompt x");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("--out"), std::string::npos) << r.output;
  r = run("generate --prompt x --width 30 --height 32 --out /tmp/x.png");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("multiples"), std::string::npos) << r.output;
  // A pipeline folder whose model_index.json is malformed.
  const std::string dir = temp_path("badpipe");
  std::filesystem::create_directories(dir);
  FILE* f = fopen((dir + "/model_index.json").c_str(), "w");
  fputs("{\"_class_name\": \"PixArtSigmaPipeline\",", f);
  fclose(f);
  r = run("generate --model " + dir + " --prompt x --out /tmp/x.png");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("model_index.json"), std::string::npos) << r.output;
  std::filesystem::remove_all(dir);
}

}  // namespace

namespace {

// `qdit inspect` on every model and pipeline folder of the golden set.
TEST(Inspect, EveryGoldenModelAndPipelineFolder) {
  int folders = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kGolden)) {
    if (!entry.is_directory()) continue;
    for (const char* sub : {"pipeline", "transformer", "text_encoder", "vae"}) {
      const auto dir = entry.path() / sub;
      if (!std::filesystem::exists(dir)) continue;
      ++folders;
      RunResult r = run("inspect " + dir.string());
      ASSERT_EQ(r.code, 0) << dir << "\n" << r.output;
      EXPECT_NE(r.output.find("tensors"), std::string::npos) << dir << "\n" << r.output;
      EXPECT_NE(r.output.find("F32"), std::string::npos) << dir;
    }
  }
  EXPECT_GE(folders, 22);  // 10 pipelines, 5 transformers, 5 text encoders, 2 VAEs
  RunResult r = run("inspect " + kGolden + "pipeline_flux_dev/pipeline");
  EXPECT_NE(r.output.find("FluxPipeline"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("FluxTransformer2DModel"), std::string::npos) << r.output;
  r = run("inspect /nonexistent/folder");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("/nonexistent/folder"), std::string::npos);
}

}  // namespace
