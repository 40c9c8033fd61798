#include <mutex>

#include "qdit/core/error.h"
#include "qdit/quant/schemes.h"

namespace qdit::quant {

void SchemeTable::add(std::shared_ptr<const Scheme> s, bool listed) {
  const std::string n = s->name();
  if (!by_name_.count(n) && listed) order_.push_back(n);
  by_name_[n] = std::move(s);
}

void SchemeTable::alias(const std::string& alias, const std::string& target) { aliases_[alias] = target; }

void SchemeTable::add_parser(std::string pattern_help, Parser p) {
  parsers_.emplace_back(std::move(pattern_help), std::move(p));
}

std::shared_ptr<const Scheme> SchemeTable::find(const std::string& name) const {
  auto a = aliases_.find(name);
  const std::string& key = a == aliases_.end() ? name : a->second;
  auto it = by_name_.find(key);
  if (it != by_name_.end()) return it->second;
  for (const auto& [help, parse] : parsers_)
    if (auto s = parse(key)) return s;
  return nullptr;
}

std::vector<std::string> SchemeTable::names() const { return order_; }

std::string SchemeTable::help() const {
  std::string out;
  for (const auto& n : order_) out += (out.empty() ? "" : ", ") + n;
  for (const auto& [help, parse] : parsers_) out += ", " + help;
  return out;
}

namespace {

// Parsed families are cached so every layer of a model shares one scheme object.
struct Registry {
  std::mutex mu;
  SchemeTable table;
  Registry() {
    register_quanto_schemes(table);
    register_torchao_schemes(table);
    register_bnb_schemes(table);
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace

const Scheme& find_scheme(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::shared_ptr<const Scheme> s = r.table.find(name);
  if (!s) fail("[quant] unknown scheme '", name, "' (known: ", r.table.help(), ")");
  // Parsed schemes are kept in the table so every caller shares (and can hold) one object.
  if (!r.table.has_exact(s->name())) r.table.add(s, /*listed=*/false);
  return *r.table.find(s->name());
}

bool has_scheme(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.table.find(name) != nullptr;
}

std::vector<std::string> scheme_names() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.table.names();
}

}  // namespace qdit::quant
