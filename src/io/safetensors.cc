#include "qdit/io/safetensors.h"

#include <atomic>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "qdit/core/error.h"

namespace qdit::io {
namespace {

using OJson = nlohmann::ordered_json;

// safetensors dtype names that exist in the format but that qdit does not handle.
constexpr const char* kKnownUnsupported[] = {"F64", "I16", "U16", "U32", "U64", "F8_E8M0",
                                             "F4", "F6_E2M3", "F6_E3M2", "C64"};

std::string supported_dtype_list() {
  std::string s;
  for (int i = 0; i < 10; ++i) s += std::string(i ? " " : "") + dtype_info(static_cast<DType>(i)).safetensors_name;
  return s;
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// "a string \"2\"", "a negative integer -3", ...: what a header field was instead of what it should be.
std::string json_kind(const OJson& j) {
  if (j.is_number_float()) return ::qdit::detail::concat("a non-integer number ", j.dump());
  if (j.is_number_integer() && !j.is_number_unsigned()) return ::qdit::detail::concat("a negative integer ", j.dump());
  const char* article = (j.is_array() || j.is_object()) ? "an " : "a ";
  if (j.is_primitive()) return ::qdit::detail::concat(article, j.type_name(), " ", j.dump());
  return ::qdit::detail::concat(article, j.type_name());
}

// Parses the header, rejecting duplicate keys in any object: nlohmann would silently keep one,
// and a duplicated tensor name means the file is ambiguous.
OJson parse_header(const std::string& path, std::string_view header) {
  struct Level {
    std::unordered_set<std::string> keys;
    std::string owner;  // key under which this object sits ("" at the top)
  };
  std::vector<Level> stack;
  std::string last_key;
  OJson::parser_callback_t cb = [&](int depth, nlohmann::json::parse_event_t ev, OJson& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (ev == E::object_start) {
      stack.push_back({{}, depth == 0 ? std::string() : last_key});
    } else if (ev == E::object_end) {
      if (!stack.empty()) stack.pop_back();
    } else if (ev == E::key) {
      last_key = parsed.get<std::string>();
      if (!stack.empty() && !stack.back().keys.insert(last_key).second) {
        if (stack.size() == 1) {
          fail("[", path, "] tensor '", last_key, "' appears twice in the header (duplicate key)");
        }
        fail("[", path, "] duplicate key '", last_key, "' inside header entry '", stack.back().owner, "'");
      }
    }
    return true;
  };
  try {
    return OJson::parse(header.begin(), header.end(), cb);
  } catch (const nlohmann::json::parse_error& e) {
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix; keep the position and reason.
    std::string what = e.what();
    if (auto k = what.find("] "); what.rfind("[json.exception", 0) == 0 && k != std::string::npos) what.erase(0, k + 2);
    fail("[", path, "] safetensors header (", header.size(), " bytes) is not valid JSON: ", what);
  }
}

}  // namespace

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->map_ = MappedFile::open(path);
  const uint64_t size = f->map_->size();
  QDIT_CHECK(size >= 8, "[", path, "] not a safetensors file: ", size,
             " bytes is shorter than the 8-byte header length field");
  const uint64_t n = read_le64(f->map_->data());
  QDIT_CHECK(n <= kMaxHeaderBytes, "[", path, "] safetensors header length ", n,
             " exceeds the sane bound of ", kMaxHeaderBytes, " bytes (corrupt or not a safetensors file)");
  QDIT_CHECK(n <= size - 8, "[", path, "] safetensors header length ", n, " is larger than the ", size - 8,
             " bytes that follow it in the file (truncated file?)");
  QDIT_CHECK(n >= 2, "[", path, "] safetensors header length ", n, " is too small to hold a JSON object");
  f->data_offset_ = 8 + n;
  f->parse(std::string_view(reinterpret_cast<const char*>(f->map_->data()) + 8, n), size - 8 - n);
  return f;
}

void SafetensorsFile::parse(std::string_view header, uint64_t data_size) {
  const std::string& p = path_;
  OJson h = parse_header(p, header);
  QDIT_CHECK(h.is_object(), "[", p, "] safetensors header must be a JSON object, found ", json_kind(h));

  size_t header_pos = 0;
  std::vector<size_t> header_order;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const OJson& e = it.value();
    if (name == "__metadata__") {
      QDIT_CHECK(e.is_object(), "[", p, "] __metadata__ must be an object of string values, found ", json_kind(e));
      for (auto m = e.begin(); m != e.end(); ++m) {
        QDIT_CHECK(m.value().is_string(), "[", p, "] __metadata__ entry '", m.key(),
                   "' must be a string, found ", json_kind(m.value()));
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "[" + p + "] tensor '" + name + "'";
    QDIT_CHECK(e.is_object(), where, ": header entry must be an object with dtype, shape and data_offsets, found ",
               json_kind(e));
    TensorRecord r;
    r.name = name;

    auto dt = e.find("dtype");
    QDIT_CHECK(dt != e.end(), where, ": missing 'dtype'");
    QDIT_CHECK(dt->is_string(), where, ": 'dtype' must be a string, found ", json_kind(*dt));
    const std::string ds = dt->get<std::string>();
    auto parsed = dtype_from_safetensors(ds);
    if (!parsed) {
      bool known = std::any_of(std::begin(kKnownUnsupported), std::end(kKnownUnsupported),
                               [&](const char* k) { return ds == k; });
      if (known) fail(where, ": unsupported dtype ", ds, " (qdit reads ", supported_dtype_list(), ")");
      fail(where, ": unknown dtype '", ds, "' (qdit reads ", supported_dtype_list(), ")");
    }
    r.dtype = *parsed;

    auto sh = e.find("shape");
    QDIT_CHECK(sh != e.end(), where, ": missing 'shape'");
    QDIT_CHECK(sh->is_array(), where, ": 'shape' must be an array of non-negative integers, found ", json_kind(*sh));
    uint64_t numel = 1;
    bool overflow = false;
    for (size_t i = 0; i < sh->size(); ++i) {
      const OJson& d = (*sh)[i];
      QDIT_CHECK(d.is_number_unsigned(), where, ": shape dimension ", i,
                 " must be a non-negative integer, found ", json_kind(d));
      const uint64_t v = d.get<uint64_t>();
      QDIT_CHECK(v <= static_cast<uint64_t>(INT64_MAX), where, ": shape dimension ", i, " = ", v, " is too large");
      r.shape.push_back(static_cast<int64_t>(v));
      overflow |= __builtin_mul_overflow(numel, v, &numel);
    }
    QDIT_CHECK(!overflow && numel <= static_cast<uint64_t>(INT64_MAX), where, ": shape ", sh->dump(),
               " has more elements than fit in 64 bits");

    auto off = e.find("data_offsets");
    QDIT_CHECK(off != e.end(), where, ": missing 'data_offsets'");
    QDIT_CHECK(off->is_array() && off->size() == 2 && (*off)[0].is_number_unsigned() &&
                   (*off)[1].is_number_unsigned(),
               where, ": 'data_offsets' must be [begin, end] with two non-negative integers, found ", off->dump());
    r.begin = (*off)[0].get<uint64_t>();
    r.end = (*off)[1].get<uint64_t>();
    QDIT_CHECK(r.begin <= r.end, where, ": data_offsets [", r.begin, ", ", r.end, "] has begin > end");
    uint64_t need = 0;
    overflow = __builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(r.dtype)), &need);
    QDIT_CHECK(!overflow && r.end - r.begin == need, where, ": data_offsets [", r.begin, ", ", r.end, "] hold ",
               r.end - r.begin, " bytes but shape ", shape_str(r.shape), " of ", ds, " needs ",
               overflow ? std::string("more than 2^64") : std::to_string(need));
    QDIT_CHECK(r.end <= data_size, where, ": data_offsets [", r.begin, ", ", r.end,
               "] run past the end of the data section (", data_size, " bytes; truncated file?)");
    records_.push_back(std::move(r));
    header_order.push_back(header_pos++);
  }

  // File order; then the ranges must tile the data section exactly (as the reference reader
  // demands): an overlap means two tensors alias, a gap or trailing bytes mean a corrupt file.
  std::vector<size_t> order(records_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::pair(records_[a].begin, records_[a].end) < std::pair(records_[b].begin, records_[b].end);
  });
  std::vector<TensorRecord> sorted;
  sorted.reserve(records_.size());
  for (size_t i : order) sorted.push_back(std::move(records_[i]));
  records_ = std::move(sorted);

  uint64_t cursor = 0;
  const TensorRecord* prev = nullptr;
  for (const TensorRecord& r : records_) {
    if (r.begin == r.end) continue;  // empty tensors occupy no bytes and overlap nothing
    if (r.begin < cursor) {
      fail("[", p, "] tensor '", r.name, "': data_offsets [", r.begin, ", ", r.end, "] overlap tensor '",
           prev->name, "' at [", prev->begin, ", ", prev->end, ")");
    }
    QDIT_CHECK(r.begin == cursor, "[", p, "] tensor '", r.name, "': data_offsets begin at ", r.begin,
               " leaving a gap of ", r.begin - cursor, " unused bytes after ",
               prev ? "tensor '" + prev->name + "'" : std::string("the header"));
    cursor = r.end;
    prev = &r;
  }
  QDIT_CHECK(cursor == data_size, "[", p, "] data section holds ", data_size, " bytes but tensors cover only ",
             cursor, " (", data_size - cursor, " trailing bytes belong to no tensor)");

  for (size_t i = 0; i < records_.size(); ++i) index_.emplace(records_[i].name, i);
}

const TensorRecord* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &records_[it->second];
}

Tensor SafetensorsFile::tensor(std::string_view name) const {
  const TensorRecord* r = find(name);
  QDIT_CHECK(r, "[", path_, "] no tensor named '", name, "' (the file holds ", records_.size(), " tensors)");
  return tensor(*r);
}

namespace {
std::atomic<uint64_t> g_tensor_views{0};
}  // namespace

uint64_t SafetensorsFile::tensors_handed_out() { return g_tensor_views.load(); }

Tensor SafetensorsFile::tensor(const TensorRecord& r) const {
  g_tensor_views.fetch_add(1, std::memory_order_relaxed);
  const uint8_t* ptr = map_->data() + data_offset_ + r.begin;
  if (reinterpret_cast<uintptr_t>(ptr) % dtype_size(r.dtype) == 0) return Tensor::borrow(ptr, r.shape, r.dtype, map_);
  Tensor t = Tensor::empty(r.shape, r.dtype, MemTag::Weights);
  std::memcpy(t.raw_data(), ptr, r.nbytes());
  return t;
}

uint64_t SafetensorsFile::tensor_bytes() const {
  uint64_t s = 0;
  for (const auto& r : records_) s += r.nbytes();
  return s;
}

}  // namespace qdit::io
