// JsonConfig: strict typed access, errors naming file and key, malformed files, and Python's
// non-finite literals (diffusers writes "lambda_min_clipped": -Infinity).
#include "qdit/io/json_config.h"

#include <cmath>

#include "test_util.h"

namespace qdit::io {
namespace {

using testing::TempDir;
using testing::error_of;

bool contains(const std::string& msg, const std::string& part) { return msg.find(part) != std::string::npos; }

TEST(JsonConfig, TypedAccess) {
  TempDir dir;
  const std::string path = dir.file("config.json");
  testing::write_bytes(path, R"({
    "num_layers": 28, "eps": 1e-6, "shift": 3, "name": "PixArt", "flag": true, "axes": [16, 56, 56],
    "big": 5000000000, "neg": -7, "nothing": null, "nested": {"a": 1, "b": [1.5, 2.5]},
    "map": {"x": "1", "y": "2"}
  })");
  const JsonConfig c = JsonConfig::load(path);
  EXPECT_EQ(c.path(), path);
  EXPECT_EQ(c.get<int>("num_layers"), 28);
  EXPECT_EQ(c.get<int64_t>("big"), 5000000000LL);
  EXPECT_EQ(c.get<int>("neg"), -7);
  EXPECT_FLOAT_EQ(c.get<float>("eps"), 1e-6f);
  EXPECT_DOUBLE_EQ(c.get<double>("shift"), 3.0);  // integers are valid floats
  EXPECT_EQ(c.get<std::string>("name"), "PixArt");
  EXPECT_TRUE(c.get<bool>("flag"));
  EXPECT_EQ(c.get<std::vector<int64_t>>("axes"), (std::vector<int64_t>{16, 56, 56}));
  EXPECT_EQ((c.get<std::map<std::string, std::string>>("map")), (std::map<std::string, std::string>{{"x", "1"}, {"y", "2"}}));
  EXPECT_EQ(c.get<std::optional<int>>("nothing"), std::nullopt);
  EXPECT_EQ(c.get<std::optional<int>>("absent"), std::nullopt);
  EXPECT_EQ(c.get<std::optional<int>>("num_layers"), 28);
  EXPECT_TRUE(c.has("num_layers"));
  EXPECT_FALSE(c.has("nothing"));  // null counts as absent
  EXPECT_FALSE(c.has("absent"));
  EXPECT_EQ(c.get_or<int>("absent", 4), 4);
  EXPECT_EQ(c.get_or<int>("nothing", 5), 5);
  EXPECT_EQ(c.get_or<int>("num_layers", 5), 28);
  EXPECT_EQ(c.get_or("absent_str", "dflt"), "dflt");
  EXPECT_EQ(c.raw()["nested"]["a"], 1);
  const JsonConfig n = c.sub("nested");
  EXPECT_EQ(n.get<std::vector<float>>("b"), (std::vector<float>{1.5f, 2.5f}));
  EXPECT_EQ(n.path(), path + ":nested");
  EXPECT_EQ(c.keys().size(), 11u);
}

TEST(JsonConfig, TypeErrorsNameFileAndKey) {
  const JsonConfig c = JsonConfig::from_json(
      nlohmann::json::parse(R"({"f": 2.5, "s": "2", "b": 1, "n": null, "neg": -1, "big": 3000000000,
                                "arr": [1, "x"], "o": {"k": 1}})"),
      "cfg.json");
  auto msg = error_of([&] { c.get<int>("f"); });
  EXPECT_TRUE(contains(msg, "[cfg.json] key 'f': expected an integer, found a number 2.5")) << msg;
  msg = error_of([&] { c.get<int>("s"); });
  EXPECT_TRUE(contains(msg, "[cfg.json] key 's': expected an integer, found a string \"2\"")) << msg;
  msg = error_of([&] { c.get<float>("s"); });
  EXPECT_TRUE(contains(msg, "key 's': expected a number")) << msg;
  msg = error_of([&] { c.get<bool>("b"); });
  EXPECT_TRUE(contains(msg, "key 'b': expected a boolean, found an integer 1")) << msg;
  msg = error_of([&] { c.get<std::string>("b"); });
  EXPECT_TRUE(contains(msg, "key 'b': expected a string")) << msg;
  msg = error_of([&] { c.get<int>("n"); });
  EXPECT_TRUE(contains(msg, "[cfg.json] key 'n' is null")) << msg;
  msg = error_of([&] { c.get<int>("missing"); });
  EXPECT_TRUE(contains(msg, "[cfg.json] missing key 'missing'")) << msg;
  msg = error_of([&] { c.get<uint32_t>("neg"); });
  EXPECT_TRUE(contains(msg, "key 'neg': expected a non-negative integer, found an integer -1")) << msg;
  msg = error_of([&] { c.get<int32_t>("big"); });
  EXPECT_TRUE(contains(msg, "key 'big': expected an integer in range, found an integer 3000000000")) << msg;
  msg = error_of([&] { c.get<std::vector<int>>("arr"); });
  EXPECT_TRUE(contains(msg, "key 'arr'[1]: expected an integer, found a string \"x\"")) << msg;
  msg = error_of([&] { c.get<std::vector<int>>("o"); });
  EXPECT_TRUE(contains(msg, "key 'o': expected an array, found an object")) << msg;
  msg = error_of([&] { c.get_or<int>("f", 3); });  // present with the wrong type is not "absent"
  EXPECT_TRUE(contains(msg, "key 'f': expected an integer")) << msg;
  msg = error_of([&] { c.sub("f"); });
  EXPECT_TRUE(contains(msg, "key 'f': expected an object")) << msg;
  msg = error_of([&] { c.sub("o").get<std::string>("k"); });
  EXPECT_TRUE(contains(msg, "[cfg.json:o] key 'k': expected a string")) << msg;
}

TEST(JsonConfig, MalformedFilesNameFileAndPosition) {
  TempDir dir;
  const std::string bad = dir.file("config.json");
  testing::write_bytes(bad, "{\n  \"a\": 1,\n  \"b\": [1, 2,\n}\n");
  auto msg = error_of([&] { JsonConfig::load(bad); });
  EXPECT_TRUE(contains(msg, "[" + bad + "] malformed JSON: parse error at line 4, column 1")) << msg;

  const std::string trailing = dir.file("trailing.json");
  testing::write_bytes(trailing, R"({"a": 1} x)");
  msg = error_of([&] { JsonConfig::load(trailing); });
  EXPECT_TRUE(contains(msg, "[" + trailing + "] malformed JSON: parse error at line 1, column 10")) << msg;

  const std::string arr = dir.file("array.json");
  testing::write_bytes(arr, "[1, 2]");
  msg = error_of([&] { JsonConfig::load(arr); });
  EXPECT_TRUE(contains(msg, "[" + arr + "] expected a JSON object at the top level, found an array")) << msg;

  const std::string empty = dir.file("empty.json");
  testing::write_bytes(empty, "");
  msg = error_of([&] { JsonConfig::load(empty); });
  EXPECT_TRUE(contains(msg, "[" + empty + "] malformed JSON")) << msg;

  msg = error_of([&] { JsonConfig::load(dir.file("absent.json")); });
  EXPECT_TRUE(contains(msg, "absent.json] config file not found")) << msg;
}

TEST(JsonConfig, PythonNonFiniteLiterals) {
  const std::string text = R"({"lo": -Infinity, "hi": Infinity, "nan": NaN, "s": "NaN and -Infinity",
                               "list": [1, NaN, -Infinity], "esc": "a\"NaN\\", "NaNx": 1})";
  const JsonConfig c = JsonConfig::from_json(parse_json(text, "sched.json"), "sched.json");
  EXPECT_EQ(c.get<double>("lo"), -INFINITY);
  EXPECT_EQ(c.get<float>("hi"), INFINITY);
  EXPECT_TRUE(std::isnan(c.get<double>("nan")));
  EXPECT_EQ(c.get<std::string>("s"), "NaN and -Infinity");  // inside strings: untouched
  EXPECT_EQ(c.get<std::string>("esc"), "a\"NaN\\");
  EXPECT_EQ(c.get<int>("NaNx"), 1);
  auto list = c.get<std::vector<double>>("list");
  ASSERT_EQ(list.size(), 3u);
  EXPECT_TRUE(std::isnan(list[1]));
  EXPECT_EQ(list[2], -INFINITY);
  // Not a literal on its own: still an error.
  auto msg = error_of([&] { parse_json(R"({"a": NaNa})", "x.json"); });
  EXPECT_TRUE(contains(msg, "[x.json] malformed JSON")) << msg;
}

TEST(JsonConfig, GoldenPixArtSchedulerConfig) {
  const std::string path =
      std::string(QDIT_TEST_DATA_DIR) + "/golden/scheduler_dpmsolver_pixart_sigma/scheduler/scheduler_config.json";
  const JsonConfig c = JsonConfig::load(path);
  EXPECT_EQ(c.get<std::string>("_class_name"), "DPMSolverMultistepScheduler");
  EXPECT_EQ(c.get<double>("lambda_min_clipped"), -INFINITY);
  EXPECT_EQ(c.get<int>("solver_order"), 2);
  EXPECT_DOUBLE_EQ(c.get<double>("beta_start"), 0.0001);
  EXPECT_FALSE(c.has("trained_betas"));
}

}  // namespace
}  // namespace qdit::io
