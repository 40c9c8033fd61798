// The scheme table the registry is built from: each library's file adds its schemes (and the
// parameterised families, such as int4wo-<group> or fpX_eAmB, through a name parser).
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qdit/quant/scheme.h"

namespace qdit::quant {

class SchemeTable {
 public:
  using Parser = std::function<std::shared_ptr<const Scheme>(const std::string& name)>;
  // listed: part of names() (parsed family members are cached unlisted).
  void add(std::shared_ptr<const Scheme> s, bool listed = true);
  bool has_exact(const std::string& name) const { return by_name_.count(name) != 0; }
  void alias(const std::string& alias, const std::string& target);
  // A parser for a family of names; returns null for names it does not own.
  void add_parser(std::string pattern_help, Parser p);
  std::shared_ptr<const Scheme> find(const std::string& name) const;  // null when unknown
  std::vector<std::string> names() const;
  std::string help() const;  // the known names and families, for error messages

 private:
  std::map<std::string, std::shared_ptr<const Scheme>> by_name_;
  std::map<std::string, std::string> aliases_;
  std::vector<std::string> order_;
  std::vector<std::pair<std::string, Parser>> parsers_;
};

void register_quanto_schemes(SchemeTable& t);
void register_torchao_schemes(SchemeTable& t);
void register_bnb_schemes(SchemeTable& t);

}  // namespace qdit::quant
