// A small JSON reader for model-file headers: objects, arrays, strings, numbers, booleans, null.
// Model files are written by clusterforce itself, so this favours clear errors over speed.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace clusterforce {

class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  Json() = default;

  static Json parse(const std::string& text) {
    Parser p{text, 0};
    Json value = p.value();
    p.skip_ws();
    if (p.pos != text.size()) p.fail("trailing characters after the JSON value");
    return value;
  }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_number() const { return type_ == Type::Number; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  bool as_bool() const {
    expect(Type::Bool, "a boolean");
    return bool_;
  }
  double as_double() const {
    expect(Type::Number, "a number");
    return number_;
  }
  int64_t as_int() const {
    expect(Type::Number, "a number");
    const auto i = static_cast<int64_t>(number_);
    if (static_cast<double>(i) != number_)
      throw std::invalid_argument("JSON value " + std::to_string(number_) + " is not an integer");
    return i;
  }
  const std::string& as_string() const {
    expect(Type::String, "a string");
    return string_;
  }

  size_t size() const {
    if (type_ == Type::Array) return array_->size();
    if (type_ == Type::Object) return object_->size();
    throw std::invalid_argument("JSON value has no size (not an array or object)");
  }
  const Json& at(size_t index) const {
    expect(Type::Array, "an array");
    if (index >= array_->size())
      throw std::out_of_range("JSON array index " + std::to_string(index) + " out of range (size " +
                              std::to_string(array_->size()) + ")");
    return (*array_)[index];
  }
  bool contains(const std::string& key) const { return type_ == Type::Object && object_->count(key) > 0; }
  const Json& at(const std::string& key) const {
    expect(Type::Object, "an object");
    auto it = object_->find(key);
    if (it == object_->end()) throw std::out_of_range("JSON object has no key '" + key + "'");
    return it->second;
  }
  const std::map<std::string, Json>& items() const {
    expect(Type::Object, "an object");
    return *object_;
  }

 private:
  Type type_ = Type::Null;
  bool bool_ = false;
  double number_ = 0.0;
  std::string string_;
  std::shared_ptr<std::vector<Json>> array_;
  std::shared_ptr<std::map<std::string, Json>> object_;

  void expect(Type t, const char* what) const {
    if (type_ != t) throw std::invalid_argument(std::string("JSON value is not ") + what);
  }

  struct Parser {
    const std::string& s;
    size_t pos;

    [[noreturn]] void fail(const std::string& why) const {
      throw std::invalid_argument("invalid JSON at byte " + std::to_string(pos) + ": " + why);
    }
    void skip_ws() {
      while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\n' || s[pos] == '\t' || s[pos] == '\r')) ++pos;
    }
    char peek() {
      skip_ws();
      if (pos >= s.size()) fail("unexpected end of text");
      return s[pos];
    }
    void literal(const char* word) {
      for (const char* c = word; *c; ++c, ++pos)
        if (pos >= s.size() || s[pos] != *c) fail(std::string("expected '") + word + "'");
    }
    Json value() {
      Json v;
      const char c = peek();
      if (c == '{') {
        v.type_ = Type::Object;
        v.object_ = std::make_shared<std::map<std::string, Json>>();
        ++pos;
        if (peek() == '}') {
          ++pos;
          return v;
        }
        while (true) {
          if (peek() != '"') fail("expected a string key");
          std::string key = string();
          if (peek() != ':') fail("expected ':'");
          ++pos;
          (*v.object_)[key] = value();
          const char d = peek();
          ++pos;
          if (d == '}') break;
          if (d != ',') fail("expected ',' or '}'");
        }
      } else if (c == '[') {
        v.type_ = Type::Array;
        v.array_ = std::make_shared<std::vector<Json>>();
        ++pos;
        if (peek() == ']') {
          ++pos;
          return v;
        }
        while (true) {
          v.array_->push_back(value());
          const char d = peek();
          ++pos;
          if (d == ']') break;
          if (d != ',') fail("expected ',' or ']'");
        }
      } else if (c == '"') {
        v.type_ = Type::String;
        v.string_ = string();
      } else if (c == 't') {
        literal("true");
        v.type_ = Type::Bool;
        v.bool_ = true;
      } else if (c == 'f') {
        literal("false");
        v.type_ = Type::Bool;
      } else if (c == 'n') {
        literal("null");
      } else {
        const char* begin = s.c_str() + pos;
        char* end = nullptr;
        v.number_ = std::strtod(begin, &end);
        if (end == begin) fail("unexpected character");
        v.type_ = Type::Number;
        pos += static_cast<size_t>(end - begin);
      }
      return v;
    }
    static void append_utf8(std::string& out, uint32_t cp) {
      if (cp < 0x80) {
        out += static_cast<char>(cp);
      } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      }
    }
    uint32_t hex4() {
      if (pos + 4 > s.size()) fail("truncated \\u escape");
      const std::string digits = s.substr(pos, 4);
      char* end = nullptr;
      const auto cp = static_cast<uint32_t>(std::strtoul(digits.c_str(), &end, 16));
      if (end != digits.c_str() + 4) fail("bad \\u escape");
      pos += 4;
      return cp;
    }
    std::string string() {
      ++pos;  // opening quote
      std::string out;
      while (true) {
        if (pos >= s.size()) fail("unterminated string");
        const char c = s[pos++];
        if (c == '"') return out;
        if (c != '\\') {
          out += c;
          continue;
        }
        if (pos >= s.size()) fail("unterminated escape");
        const char e = s[pos++];
        switch (e) {
          case '"':
            out += '"';
            break;
          case '\\':
            out += '\\';
            break;
          case '/':
            out += '/';
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          case 'n':
            out += '\n';
            break;
          case 'r':
            out += '\r';
            break;
          case 't':
            out += '\t';
            break;
          case 'u': {
            uint32_t cp = hex4();
            if (cp >= 0xD800 && cp < 0xDC00 && pos + 6 <= s.size() && s[pos] == '\\' && s[pos + 1] == 'u') {
              pos += 2;
              const uint32_t low = hex4();
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            append_utf8(out, cp);
            break;
          }
          default: {
            // The byte in hex: a damaged file can hold bytes that are not text, and the
            // message must stay valid UTF-8 for Python and the LAMMPS log.
            char code[8];
            std::snprintf(code, sizeof code, "0x%02X", static_cast<unsigned char>(e));
            fail(std::string("unknown escape (backslash then byte ") + code + ")");
          }
        }
      }
    }
  };
};

}  // namespace clusterforce
