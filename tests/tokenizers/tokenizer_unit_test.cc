// Unit tests: Python-semantics Unicode helpers (vectors computed with CPython 3.11), the CLIP
// cleanup and regex, the fast BPE loop against the transcribed reference loop, added-token
// splitting, truncation/padding rules, folder detection, and malformed tokenizer folders.
#include <random>

#include "golden_util.h"
#include "qdit/tokenizers/bpe.h"
#include "qdit/tokenizers/clip_tokenizer.h"
#include "qdit/tokenizers/t5_tokenizer.h"
#include "qdit/tokenizers/tokenizer_files.h"
#include "qdit/tokenizers/unicode_text.h"

namespace qdit::tokenizers {
namespace {

using namespace testing;

std::string t5_dir() { return golden_dir("tokenizer_t5") + "/tokenizer"; }
std::string clip_l_dir() { return golden_dir("tokenizer_clip") + "/tokenizer"; }

// ------------------------------------------------------------------------------------ Unicode

TEST(Unicode, PythonLower) {
  // Final sigma (at word end, before punctuation, after a combining mark), U+0130, Lt, Nl, So.
  EXPECT_EQ(python_lower(U"ΟΔΟΣ ΣΑΣ."), U"\u03bf\u03b4\u03bf\u03c2 \u03c3\u03b1\u03c2.");
  EXPECT_EQ(python_lower(U"Σ"), U"\u03c3");
  EXPECT_EQ(python_lower(U"AΣ'B"), U"a\u03c3'b");
  EXPECT_EQ(python_lower(U"AΣ."), U"a\u03c2.");
  EXPECT_EQ(python_lower(U"ΑΣ\u0301 x"), U"\u03b1\u03c2\u0301 x");
  EXPECT_EQ(python_lower(U"İI"), U"i\u0307i");
  EXPECT_EQ(python_lower(U"ǅungla ẞ Ⅻ Ⓐ"), U"\u01c6ungla \u00df \u217b \u24d0");
  EXPECT_EQ(python_lower(U"ＦＵＬＬ Ünïcödé"), U"\uff46\uff55\uff4c\uff4c \u00fcn\u00efc\u00f6d\u00e9");
}

TEST(Unicode, PythonStripSplit) {
  EXPECT_EQ(python_strip(U"\u3000\x1c abc \x85\xa0"), U"abc");
  EXPECT_EQ(python_strip(U"\u200babc\u200b"), U"\u200babc\u200b");  // ZWSP is not whitespace
  EXPECT_EQ(python_split(U"a\u2028b\u00a0c\u200bd\x1c" U"e"),
            (std::vector<std::u32string>{U"a", U"b", U"c\u200bd", U"e"}));
  EXPECT_TRUE(python_split(U" \t\n ").empty());
}

TEST(Unicode, NfcAndCategories) {
  EXPECT_EQ(nfc(U"e\u0301"), U"\u00e9");
  EXPECT_EQ(nfc(U"\u212b"), U"\u00c5");
  EXPECT_EQ(nfc(U"\u1100\u1161\u11a8"), U"\uac01");
  EXPECT_EQ(nfc(U"q\u0301"), U"q\u0301");
  EXPECT_EQ(nfc(U"\uf900"), U"\u8c48");
  EXPECT_TRUE(is_letter(U'ß') && is_letter(U'日') && !is_letter(U'1'));
  EXPECT_TRUE(is_number(U'½') && is_number(U'①') && is_number(U'Ⅻ'));
  EXPECT_TRUE(is_other(0x200B) && is_other(0x0085) && is_other(0xE000) && is_other(0x0378));
  // New in Unicode 15 (e.g. U+1FA77 pink heart): unassigned for Python 3.11, so category Cn.
  EXPECT_TRUE(is_other(0x1FA77));
  EXPECT_TRUE(is_space_separator(0xA0) && !is_space_separator(U'\t'));
}

TEST(Unicode, Utf8RoundTripAndErrors) {
  const std::string s = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";  // a é € 😀
  EXPECT_EQ(utf8_decode(s, "t"), U"a\u00e9\u20ac\U0001F600");
  EXPECT_EQ(utf8_encode(utf8_decode(s, "t")), s);
  for (const std::string bad : {"\xff", "\xC0\x80", "\xED\xA0\x80", "\xE2\x82", "\xF4\x90\x80\x80"}) {
    const std::string msg = error_of([&] { utf8_decode(bad, "where"); });
    EXPECT_NE(msg.find("[where]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("UTF-8"), std::string::npos) << msg;
  }
}

TEST(Unicode, PixArtPreprocess) {
  EXPECT_EQ(pixart_preprocess("  \xC3\x9Cn\xC3\xAF" "c\xC3\xB6" "d\xC3\xA9 \xCE\xA3\xCE\x91\xCE\xA3\xC2\xA0\n"),
            utf8_encode(U"\u00fcn\u00efc\u00f6d\u00e9 \u03c3\u03b1\u03c2"));
}

// ------------------------------------------------------------------------------ CLIP cleanup

TEST(ClipText, BasicCleanLikeBasicTokenizer) {
  // ZWSP and U+FFFD dropped, NBSP/tab -> space, NUL and form feed dropped, CJK spaced, U+2028
  // splits words, per-word lowercase with final sigma.
  using namespace std::string_literals;  // the input holds a NUL
  EXPECT_EQ(ClipTokenizer::basic_clean(U"Zero\u200bWidth\u00a0NBSP\t\ufffd x\x00y 日本 a\u2028" U"b ΑΣ \x0c!"s),
            U"zerowidth nbsp xy 日 本 a b \u03b1\u03c2 !");
  EXPECT_EQ(ClipTokenizer::basic_clean(U"Cafe\u0301"), U"caf\u00e9");
  EXPECT_EQ(ClipTokenizer::basic_clean(U" \t "), U"");
}

TEST(ClipText, PretokenizeRegex) {
  const auto words = ClipTokenizer::pretokenize(U"don't <|endoftext|>x 'll ½3.5!!? naïve q\u0301 'ra \u017f '\u017f");
  const std::vector<std::u32string> want = {U"don", U"'t", U"<|endoftext|>", U"x", U"'ll", U"½", U"3", U".",
                                            U"5", U"!!?", U"naïve", U"q", U"\u0301", U"'", U"ra",
                                            U"\u017f", U"'\u017f"};
  EXPECT_EQ(words, want);
}

// ------------------------------------------------------------------------------------- BPE

TEST(Bpe, BytesToUnicodeTable) {
  const auto& t = bytes_to_unicode();
  EXPECT_EQ(t['a'], "a");
  EXPECT_EQ(t['!'], "!");
  EXPECT_EQ(t[' '], "\xC4\xA0");     // U+0120 'Ġ'
  EXPECT_EQ(t[0], "\xC4\x80");       // U+0100
  EXPECT_EQ(t[0xAD], "\xC5\x83");    // U+0143, the last stand-in
  EXPECT_EQ(t[0xC3], "\xC3\x83");    // printable Latin-1 maps to itself
}

TEST(Bpe, MergesFileParsing) {
  TempDir dir;
  // CR and CRLF line ends (Python's universal newlines), surrounding blank lines stripped.
  dir.write("merges.txt", "\n#version: 0.2\r\nt h\rth e</w>\r\n\n");
  const BpeMerges m = BpeMerges::load(dir.file("merges.txt"));
  EXPECT_EQ(m.size(), 2u);
  EXPECT_EQ(m.rank("t", "h"), 0);
  EXPECT_EQ(m.rank("th", "e</w>"), 1);
  EXPECT_EQ(m.rank("h", "e"), -1);
  EXPECT_EQ(m.apply({"t", "h", "e</w>"}), (std::vector<std::string>{"the</w>"}));
}

TEST(Bpe, FastLoopEqualsReferenceOnRandomMerges) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 300; ++trial) {
    // Merges over a small alphabet, built like BPE training but with shuffled ranks so that
    // pathological orders (a later merge producing a lower-ranked pair) occur too.
    const int alphabet = 2 + static_cast<int>(rng() % 4);
    std::vector<std::string> symbols;
    for (int i = 0; i < alphabet; ++i) symbols.emplace_back(1, static_cast<char>('a' + i));
    std::vector<std::pair<std::string, std::string>> pairs;
    const int n_merges = 1 + static_cast<int>(rng() % 25);
    for (int m = 0; m < n_merges; ++m) {
      const auto& x = symbols[rng() % symbols.size()];
      const auto& y = symbols[rng() % symbols.size()];
      pairs.emplace_back(x, y);
      symbols.push_back(x + y);
    }
    if (trial % 2) std::shuffle(pairs.begin(), pairs.end(), rng);
    const BpeMerges merges = BpeMerges::from_pairs(pairs);
    for (int w = 0; w < 20; ++w) {
      std::vector<std::string> word;
      const int len = 1 + static_cast<int>(rng() % 40);
      for (int i = 0; i < len; ++i) word.emplace_back(1, static_cast<char>('a' + rng() % alphabet));
      ASSERT_EQ(merges.apply(word), bpe_reference(merges, word)) << "trial " << trial << " word " << w;
    }
  }
}

TEST(Bpe, LongWordIsNotQuadratic) {
  // 200k symbols through three levels of merges: "a a" -> "aa" -> "aaaa" -> "aaaaaaaa". The
  // reference loop would need ~10^10 steps; the heap loop takes milliseconds.
  const BpeMerges merges = BpeMerges::from_pairs({{"a", "a"}, {"aa", "aa"}, {"aaaa", "aaaa"}});
  std::vector<std::string> word(200000, "a");
  const auto out = merges.apply(word);
  ASSERT_EQ(out.size(), 200000u / 8);
  for (const auto& s : out) ASSERT_EQ(s, "aaaaaaaa");
  std::vector<std::string> small(1001, "a");
  EXPECT_EQ(merges.apply(small), bpe_reference(merges, small));
}

// ---------------------------------------------------------------------------- added tokens

std::vector<std::pair<std::u32string, bool>> chunks(const AddedTokenSplitter& s, std::u32string_view text) {
  std::vector<std::pair<std::u32string, bool>> out;
  for (const auto& c : s.split(text)) out.emplace_back(c.text, c.token != nullptr);
  return out;
}

TEST(AddedTokens, LongestMatchStripAndSingleWord) {
  AddedToken ab{"ab", 1}, abc{"abc", 2}, s{"<s>", 3, true, true}, p{"<p>", 4}, w{"w", 5, false, false, true};
  const AddedTokenSplitter sp({ab, abc, s, p, w});
  using V = std::vector<std::pair<std::u32string, bool>>;
  EXPECT_EQ(chunks(sp, U"xabcx"), (V{{U"x", false}, {U"abc", true}, {U"x", false}}));
  EXPECT_EQ(chunks(sp, U"xabx"), (V{{U"x", false}, {U"ab", true}, {U"x", false}}));
  EXPECT_EQ(chunks(sp, U"a \u3000<s>  b"), (V{{U"a", false}, {U"<s>", true}, {U"b", false}}));
  EXPECT_EQ(chunks(sp, U"a <p> b"), (V{{U"a ", false}, {U"<p>", true}, {U" b", false}}));
  EXPECT_EQ(chunks(sp, U"<s> "), (V{{U"<s>", true}}));
  // single_word: glued to a neighbour -> merged back into plain text.
  EXPECT_EQ(chunks(sp, U"Ewz"), (V{{U"Ew", false}, {U"z", false}}));
  EXPECT_EQ(chunks(sp, U" w z"), (V{{U" ", false}, {U"w", true}, {U" z", false}}));
}

// ---------------------------------------------------------------- truncation, padding, EOS

TEST(Encode, T5EosAndTruncationRules) {
  const auto t5 = T5Tokenizer::load(t5_dir());
  const int64_t a = t5->encode_plain("a").at(0);
  const int64_t eos = t5->eos_id();
  // Consecutive unknown characters become one <unk> inside sentencepiece.
  EXPECT_EQ(t5->encode_plain("日本語のテキスト"), (std::vector<int64_t>{t5->token_to_id("\u2581"), t5->unk_id()}));
  // Truncation keeps max_length - 1 ids; </s> is only added when the kept ids do not end with it.
  auto b = t5->encode({"a </s> a", "a a a </s>", "a </s>", ""}, 3, true, true);
  EXPECT_EQ(b.ids[0], (std::vector<int64_t>{a, eos, 0}));
  EXPECT_EQ(b.mask[0], (std::vector<int64_t>{1, 1, 0}));
  EXPECT_EQ(b.ids[1], (std::vector<int64_t>{a, a, eos}));
  EXPECT_EQ(b.ids[2], (std::vector<int64_t>{a, eos, 0}));
  EXPECT_EQ(b.ids[3], (std::vector<int64_t>{eos, 0, 0}));
  EXPECT_EQ(b.mask[3], (std::vector<int64_t>{1, 0, 0}));
  // Without truncation a long row stays long (and the batch no longer forms a matrix).
  auto r = t5->encode({"a a a", "a"}, 3, true, false);
  EXPECT_EQ(r.ids[0], (std::vector<int64_t>{a, a, a, eos}));
  EXPECT_EQ(r.ids[1], (std::vector<int64_t>{a, eos, 0}));
  EXPECT_NE(error_of([&] { r.ids_tensor(); }).find("equal length"), std::string::npos);
  // A matrix batch converts to I64 [N, L].
  const Tensor ids = b.ids_tensor(), mask = b.mask_tensor();
  EXPECT_EQ(ids.dtype(), DType::I64);
  EXPECT_EQ(ids.shape(), (Shape{4, 3}));
  EXPECT_EQ(ids.data<int64_t>()[3 * 1 + 2], eos);
  EXPECT_EQ(mask.data<int64_t>()[3 * 3 + 0], 1);
  // max_length 0 means model_max_length (512 here); 1 leaves no room next to </s>.
  EXPECT_EQ(t5->encode({"a"}, 0, true, true).ids[0].size(), 512u);
  EXPECT_NE(error_of([&] { t5->encode({"a"}, 1, true, true); }).find("max_length 1"), std::string::npos);
}

TEST(Encode, ClipBosEosTruncation) {
  const auto clip = ClipTokenizer::load(clip_l_dir());
  const int64_t a = clip->token_to_id("a</w>");
  auto b = clip->encode({"a a a", "a"}, 4, true, true);
  EXPECT_EQ(b.ids[0], (std::vector<int64_t>{clip->bos_id(), a, a, clip->eos_id()}));
  EXPECT_EQ(b.ids[1], (std::vector<int64_t>{clip->bos_id(), a, clip->eos_id(), clip->pad_id()}));
  EXPECT_EQ(b.mask[1], (std::vector<int64_t>{1, 1, 1, 0}));
  EXPECT_NE(error_of([&] { clip->encode({"a"}, 2, true, true); }).find("max_length 2"), std::string::npos);
  EXPECT_NE(error_of([&] { clip->encode_plain("bad \xff"); }).find("UTF-8"), std::string::npos);
  // Upper-case special literal: not an added-token match, but the regex + BPE cache still map it.
  EXPECT_EQ(clip->encode_plain("<|ENDOFTEXT|>"), std::vector<int64_t>{clip->eos_id()});
}

// ------------------------------------------------------------------------ folder variants

TEST(Folders, DetectionWithoutConfigMatchesSavedFolder) {
  const auto c = read_case_json("tokenizer_t5");
  const auto prompts = c.at("prompts").get<std::vector<std::string>>();
  TempDir t5_min, t5_legacy, clip_min;
  t5_min.copy_from(t5_dir(), {"spiece.model"});
  t5_legacy.copy_from(t5_dir(), {"spiece.model", "added_tokens.json", "special_tokens_map.json"});
  clip_min.copy_from(clip_l_dir(), {"vocab.json", "merges.txt"});
  const auto ref_t5 = load_tokenizer(t5_dir());
  const auto ref_clip = load_tokenizer(clip_l_dir());
  for (const auto* dir : {&t5_min, &t5_legacy}) {
    const auto tok = load_tokenizer(dir->str());
    EXPECT_EQ(tok->name(), "T5Tokenizer");
    EXPECT_EQ(tok->vocab_size(), ref_t5->vocab_size());
    EXPECT_EQ(tok->model_max_length(), -1);
    EXPECT_EQ(tok->encode(prompts, 48, true, true).ids, ref_t5->encode(prompts, 48, true, true).ids);
  }
  const auto clip = load_tokenizer(clip_min.str());
  EXPECT_EQ(clip->name(), "CLIPTokenizer");
  EXPECT_EQ(clip->vocab_size(), ref_clip->vocab_size());
  EXPECT_EQ(clip->encode(prompts, 77, true, true).ids, ref_clip->encode(prompts, 77, true, true).ids);
  EXPECT_NE(error_of([&] { clip->encode({"a"}, 0, true, true); }).find("model_max_length"), std::string::npos);
}

TEST(Folders, T5AdditionalSpecialTokensWithoutExtraIds) {
  // T5Tokenizer.__init__ appends the extra ids to a given additional_special_tokens list that names
  // none; they are then added like any new special token, numbered forwards after the 400 pieces.
  TempDir dir;
  dir.copy_from(t5_dir(), {"spiece.model"});
  dir.write("tokenizer_config.json",
            R"({"tokenizer_class": "T5Tokenizer", "extra_ids": 2, "additional_special_tokens": ["<x>"]})");
  const auto t5 = T5Tokenizer::load(dir.str());
  ASSERT_EQ(t5->sp_piece_count(), 400);
  EXPECT_EQ(t5->token_to_id("<x>"), 400);
  EXPECT_EQ(t5->token_to_id("<extra_id_0>"), 401);
  EXPECT_EQ(t5->token_to_id("<extra_id_1>"), 402);
  EXPECT_EQ(t5->vocab_size(), 403);
  const int64_t a = t5->encode_plain("a").at(0);
  EXPECT_EQ(t5->encode_plain("a<x>a"), (std::vector<int64_t>{a, 400, a}));
}

// ------------------------------------------------------------------------------ bad input

void expect_error_names(const std::string& dir, const std::string& needle, const std::string& also = "") {
  const std::string msg = error_of([&] { load_tokenizer(dir); });
  EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  if (!also.empty()) {
    EXPECT_NE(msg.find(also), std::string::npos) << msg;
  }
}

TEST(BadInput, T5Folders) {
  TempDir missing, corrupt, not_legacy, bad_config;
  missing.write("tokenizer_config.json", R"({"tokenizer_class": "T5Tokenizer"})");
  expect_error_names(missing.str(), missing.file("spiece.model"), "not found");
  corrupt.write("tokenizer_config.json", R"({"tokenizer_class": "T5Tokenizer"})");
  corrupt.write("spiece.model", "this is not a sentencepiece model");
  expect_error_names(corrupt.str(), corrupt.file("spiece.model"), "cannot load");
  not_legacy.copy_from(t5_dir(), {"spiece.model"});
  not_legacy.write("tokenizer_config.json", R"({"tokenizer_class": "T5Tokenizer", "legacy": false})");
  expect_error_names(not_legacy.str(), not_legacy.file("tokenizer_config.json"), "legacy");
  bad_config.copy_from(t5_dir(), {"spiece.model"});
  bad_config.write("tokenizer_config.json", R"({"tokenizer_class": "T5Tokenizer", )");
  expect_error_names(bad_config.str(), bad_config.file("tokenizer_config.json"), "JSON");
}

TEST(BadInput, ClipFolders) {
  const std::vector<std::string> files = {"merges.txt", "tokenizer_config.json"};
  TempDir bad_json, bad_id, no_version, bad_line, no_merges;
  bad_json.copy_from(clip_l_dir(), files);
  bad_json.write("vocab.json", R"({"a": 0, "b": )");
  expect_error_names(bad_json.str(), bad_json.file("vocab.json"), "JSON");
  bad_id.copy_from(clip_l_dir(), files);
  bad_id.write("vocab.json", R"({"a": 0, "b": "one"})");
  expect_error_names(bad_id.str(), bad_id.file("vocab.json"), "\"b\"");
  no_version.copy_from(clip_l_dir(), {"vocab.json", "tokenizer_config.json"});
  no_version.write("merges.txt", "t h\nth e</w>\n");
  expect_error_names(no_version.str(), no_version.file("merges.txt"), "#version");
  bad_line.copy_from(clip_l_dir(), {"vocab.json", "tokenizer_config.json"});
  bad_line.write("merges.txt", "#version: 0.2\nt h\nth e </w>\n");
  expect_error_names(bad_line.str(), bad_line.file("merges.txt"), "line 3");
  no_merges.copy_from(clip_l_dir(), {"vocab.json", "tokenizer_config.json"});
  expect_error_names(no_merges.str(), no_merges.file("merges.txt"), "not found");
}

TEST(BadInput, UnknownFolders) {
  TempDir empty, llama;
  expect_error_names(empty.str(), empty.str(), "cannot tell the tokenizer type");
  llama.write("tokenizer_config.json", R"({"tokenizer_class": "LlamaTokenizerFast"})");
  expect_error_names(llama.str(), "LlamaTokenizerFast", "tokenizer_class");
  expect_error_names("/nonexistent/qdit/tokenizer", "/nonexistent/qdit/tokenizer", "does not exist");
}

}  // namespace
}  // namespace qdit::tokenizers
