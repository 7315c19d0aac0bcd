#include "bitnet/text/chat_template.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "bitnet/base/error.h"

namespace bitnet {
namespace {

// The three template texts of BITNET_FORMATS.md §6, verbatim ("\n" inside the Jinja strings is the
// two characters backslash and n, as in the files).
constexpr const char* kHfBitnetTemplate =
    R"({% for message in messages %}{{ message['role'] | capitalize + ': ' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %})";
constexpr const char* kGgufBitnetTemplate =
    R"({% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}{% if message['role'] == 'user' %}{{ 'Human: ' + message['content'] + '\n\nBITNETAssistant: ' + eos_token }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %})";
// Meta-Llama-3-8B-Instruct tokenizer_config.json.
constexpr const char* kLlama3Template =
    R"({% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %})";
constexpr const char* kChatmlTemplate =
    R"({% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %})";

const std::vector<ChatMessage> kSysUser = {{"system", "You are a helpful assistant."},
                                           {"user", "Hey, are you conscious?"}};
const std::vector<ChatMessage> kMultiTurn = {{"system", "Be brief."},
                                             {"user", "Hi"},
                                             {"assistant", "Hello! How can I help?"},
                                             {"user", "Name a colour."}};

TEST(ChatTemplate, NamesRoundTrip) {
  for (ChatTemplate t : {ChatTemplate::Bitnet, ChatTemplate::Llama3, ChatTemplate::BitnetFork}) {
    EXPECT_EQ(chat_template_from_name(chat_template_name(t)), t);
  }
  EXPECT_EQ(chat_template_from_name("bitnet-fork"), ChatTemplate::BitnetFork);
  EXPECT_EQ(chat_template_from_name("Bitnet"), std::nullopt);
  EXPECT_EQ(chat_template_from_name("chatml"), std::nullopt);
  EXPECT_EQ(chat_template_names(), "bitnet, llama3, bitnet-fork");
  EXPECT_EQ(parse_chat_template_flag("llama3"), ChatTemplate::Llama3);
  try {
    parse_chat_template_flag("llama-3");
    ADD_FAILURE() << "accepted llama-3";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("--chat-template"), std::string::npos) << what;
    EXPECT_NE(what.find("llama-3"), std::string::npos) << what;
    EXPECT_NE(what.find("bitnet, llama3, bitnet-fork"), std::string::npos) << what;
  }
}

TEST(ChatTemplate, BitnetSystemAndUser) {
  EXPECT_EQ(render_chat(ChatTemplate::Bitnet, kSysUser, true),
            "System: You are a helpful assistant.<|eot_id|>User: Hey, are you conscious?<|eot_id|>"
            "Assistant: ");
  EXPECT_EQ(render_chat(ChatTemplate::Bitnet, kSysUser, false),
            "System: You are a helpful assistant.<|eot_id|>User: Hey, are you conscious?<|eot_id|>");
}

TEST(ChatTemplate, BitnetWithoutSystem) {
  EXPECT_EQ(render_chat(ChatTemplate::Bitnet, {{"user", "Hey, are you conscious? Can you talk to me?"}}, true),
            "User: Hey, are you conscious? Can you talk to me?<|eot_id|>Assistant: ");
  EXPECT_EQ(render_chat(ChatTemplate::Bitnet, {}, true), "Assistant: ");
  EXPECT_EQ(render_chat(ChatTemplate::Bitnet, {}, false), "");
}

TEST(ChatTemplate, BitnetMultiTurnTrimsContent) {
  const std::vector<ChatMessage> m = {{"system", "  Be brief.\n"},
                                      {"user", "\tHi\n\n"},
                                      {"assistant", " Hello!  How can I help? "},
                                      {"user", "Name a colour."}};
  EXPECT_EQ(render_chat(ChatTemplate::Bitnet, m, true),
            "System: Be brief.<|eot_id|>User: Hi<|eot_id|>Assistant: Hello!  How can I help?<|eot_id|>"
            "User: Name a colour.<|eot_id|>Assistant: ");
}

TEST(ChatTemplate, BitnetUnicode) {
  // U+3000 IDEOGRAPHIC SPACE and U+00A0 NO-BREAK SPACE are whitespace to Python's str.strip().
  const std::vector<ChatMessage> m = {{"user", "\xe3\x80\x80\xc2\xbfQu\xc3\xa9 tal? \xe4\xb8\x96\xe7\x95\x8c "
                                               "\xf0\x9f\x98\x80\xc2\xa0"}};
  EXPECT_EQ(render_chat(ChatTemplate::Bitnet, m, true),
            "User: \xc2\xbfQu\xc3\xa9 tal? \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80<|eot_id|>Assistant: ");
}

TEST(ChatTemplate, Llama3) {
  EXPECT_EQ(render_chat(ChatTemplate::Llama3, kSysUser, true),
            "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHey, are you conscious?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render_chat(ChatTemplate::Llama3, {{"user", "  hi \n"}, {"assistant", "\nhello"}}, false),
            "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nhello<|eot_id|>");
}

TEST(ChatTemplate, BitnetFork) {
  // No separator after the system text, no trim; the assistant opener is part of the user turn.
  EXPECT_EQ(render_chat(ChatTemplate::BitnetFork, {{"system", "You are a helpful assistant"}, {"user", "Hi"}},
                        true),
            "System: You are a helpful assistantUser: Hi<|eot_id|>Assistant: ");
  EXPECT_EQ(render_chat(ChatTemplate::BitnetFork, {{"user", " Hi "}}, false),
            "User:  Hi <|eot_id|>Assistant: ");
  EXPECT_EQ(render_chat(ChatTemplate::BitnetFork, kMultiTurn, true),
            "System: Be brief.User: Hi<|eot_id|>Assistant: Hello! How can I help?<|eot_id|>"
            "User: Name a colour.<|eot_id|>Assistant: ");
}

TEST(ChatTemplate, RejectsUnknownRoles) {
  for (const char* role : {"tool", "System", "", "assistant "}) {
    const std::vector<ChatMessage> m = {{"user", "hi"}, {role, "x"}};
    for (ChatTemplate t : {ChatTemplate::Bitnet, ChatTemplate::Llama3, ChatTemplate::BitnetFork}) {
      try {
        render_chat(t, m, true);
        ADD_FAILURE() << "accepted role '" << role << "'";
      } catch (const Error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("message 1"), std::string::npos) << what;
        EXPECT_NE(what.find(std::string("\"") + role + "\""), std::string::npos) << what;
        EXPECT_NE(what.find("system, user and assistant"), std::string::npos) << what;
      }
    }
  }
}

TEST(ChatTemplate, JinjaTrim) {
  EXPECT_EQ(jinja_trim(""), "");
  EXPECT_EQ(jinja_trim(" \t\n\v\f\r"), "");
  EXPECT_EQ(jinja_trim("\x1c a b \x1f"), "a b");
  EXPECT_EQ(jinja_trim("\xc2\x85x\xc2\xa0"), "x");                  // U+0085, U+00A0
  EXPECT_EQ(jinja_trim("\xe2\x80\xa8x\xe2\x80\x89\xe3\x80\x80"), "x");  // U+2028, U+2009, U+3000
  EXPECT_EQ(jinja_trim("\xe2\x80\x8bx"), "\xe2\x80\x8bx");            // U+200B is not whitespace
  EXPECT_EQ(jinja_trim(" \xff "), "\xff");                          // invalid byte kept
  EXPECT_EQ(jinja_trim(" \xe3\x80"), "\xe3\x80");                   // truncated sequence kept
  EXPECT_EQ(jinja_trim("\x80 "), "\x80");
}

TEST(ChatTemplate, DetectsHfBitnetTemplate) {
  for (const char* arch : {"bitnet-b1.58", "bitnet-25", "bitnet", "llama"}) {
    const ChatTemplateChoice c = detect_chat_template(kHfBitnetTemplate, arch);
    EXPECT_EQ(c.tmpl, ChatTemplate::Bitnet) << arch;
    EXPECT_FALSE(c.notice) << *c.notice;
  }
  // Formatting variants of the same template.
  const ChatTemplateChoice v = detect_chat_template(
      "{%- for message in messages -%}\n  {{- message[\"role\"]|capitalize + \": \" + "
      "message[\"content\"]|trim + \"<|eot_id|>\" -}}\n{%- endfor -%}\n"
      "{%- if add_generation_prompt -%}{{- \"Assistant: \" -}}{%- endif -%}",
      "bitnet-b1.58");
  EXPECT_EQ(v.tmpl, ChatTemplate::Bitnet);
  EXPECT_FALSE(v.notice);
}

TEST(ChatTemplate, DetectsTheBuggyGgufTemplate) {
  const ChatTemplateChoice c = detect_chat_template(kGgufBitnetTemplate, "bitnet-b1.58");
  EXPECT_EQ(c.tmpl, ChatTemplate::Bitnet);
  ASSERT_TRUE(c.notice);
  EXPECT_NE(c.notice->find("BITNETAssistant"), std::string::npos) << *c.notice;
  EXPECT_NE(c.notice->find("system"), std::string::npos) << *c.notice;
  EXPECT_NE(c.notice->find("end-of-sequence"), std::string::npos) << *c.notice;
  EXPECT_NE(c.notice->find("--chat-template"), std::string::npos) << *c.notice;
  // Whatever the architecture says.
  EXPECT_EQ(detect_chat_template(kGgufBitnetTemplate, "llama").tmpl, ChatTemplate::Bitnet);
}

TEST(ChatTemplate, DetectsLlama3) {
  for (const char* arch : {"llama", "bitnet-b1.58", "bitnet"}) {
    const ChatTemplateChoice c = detect_chat_template(kLlama3Template, arch);
    EXPECT_EQ(c.tmpl, ChatTemplate::Llama3) << arch;
    EXPECT_FALSE(c.notice);
  }
}

TEST(ChatTemplate, EmptyTemplateUsesTheArchitectureDefault) {
  for (const char* arch : {"bitnet-b1.58", "bitnet-25", "bitnet"}) {
    const ChatTemplateChoice c = detect_chat_template("", arch);
    EXPECT_EQ(c.tmpl, ChatTemplate::Bitnet) << arch;
    EXPECT_FALSE(c.notice);
  }
  const ChatTemplateChoice l = detect_chat_template("", "llama");
  EXPECT_EQ(l.tmpl, ChatTemplate::Llama3);
  EXPECT_FALSE(l.notice);
  const ChatTemplateChoice u = detect_chat_template("", "gpt2");
  EXPECT_EQ(u.tmpl, ChatTemplate::Bitnet);
  ASSERT_TRUE(u.notice);
  EXPECT_NE(u.notice->find("gpt2"), std::string::npos) << *u.notice;
}

TEST(ChatTemplate, UnknownTemplateUsesTheArchitectureDefaultWithANotice) {
  const ChatTemplateChoice b = detect_chat_template(kChatmlTemplate, "bitnet-b1.58");
  EXPECT_EQ(b.tmpl, ChatTemplate::Bitnet);
  ASSERT_TRUE(b.notice);
  EXPECT_NE(b.notice->find("not one bitnet recognises"), std::string::npos) << *b.notice;
  EXPECT_NE(b.notice->find("bitnet-b1.58"), std::string::npos) << *b.notice;
  EXPECT_NE(b.notice->find("--chat-template"), std::string::npos) << *b.notice;
  const ChatTemplateChoice l = detect_chat_template(kChatmlTemplate, "llama");
  EXPECT_EQ(l.tmpl, ChatTemplate::Llama3);
  ASSERT_TRUE(l.notice);
}

// Markup ranges: the template's bytes exactly, never a byte of a message's content.
TEST(ChatTemplate, MarkupCoversTheTemplateOnly) {
  const std::vector<ChatMessage> m = {{"system", "S<|eot_id|>"}, {"user", " U "}, {"assistant", ""}, {"user", "<|x|>"}};
  for (ChatTemplate t : {ChatTemplate::Bitnet, ChatTemplate::Llama3, ChatTemplate::BitnetFork})
    for (bool gen : {true, false}) {
      const MarkedChat c = render_chat_marked(t, m, gen);
      EXPECT_EQ(c.text, render_chat(t, m, gen));
      // Removing the markup leaves the contents, in order, as the template wrote them (trimmed or not).
      std::string rest;
      size_t at = 0;
      for (size_t r = 0; r < c.markup.size(); ++r) {
        ASSERT_LT(c.markup[r].begin, c.markup[r].end) << chat_template_name(t);
        if (r > 0) {  // merged when adjacent
          ASSERT_LT(c.markup[r - 1].end, c.markup[r].begin) << chat_template_name(t);
        }
        rest += c.text.substr(at, c.markup[r].begin - at);
        at = c.markup[r].end;
      }
      rest += c.text.substr(at);
      const bool trims = t != ChatTemplate::BitnetFork;
      EXPECT_EQ(rest, std::string("S<|eot_id|>") + (trims ? "U" : " U ") + "<|x|>") << chat_template_name(t);
    }
  const MarkedChat c = render_chat_marked(ChatTemplate::Bitnet, {{"user", "hi"}}, true);
  ASSERT_EQ(c.markup.size(), 2u);
  EXPECT_EQ(c.text.substr(c.markup[0].begin, c.markup[0].end - c.markup[0].begin), "User: ");
  EXPECT_EQ(c.text.substr(c.markup[1].begin), "<|eot_id|>Assistant: ");
}

}  // namespace
}  // namespace bitnet
