"""Renders the chat templates in tests/fixtures/chat_templates/*.jinja with jinja2 configured the
way transformers' apply_chat_template configures it, and writes the expected outputs that
tests/tokenizer/chat_template_test.cpp compares against byte for byte.

transformers (utils/chat_template_utils.py) compiles templates with
  ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                extensions=[AssistantTracker, jinja2.ext.loopcontrols])
  filters["tojson"] = json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...)
  globals["raise_exception"] raises TemplateError(message); globals["strftime_now"] formats now
and renders with messages=..., tools=<list or None>, documents=None, add_generation_prompt=...,
the special tokens and any extra keyword arguments.

Writes:
  tests/fixtures/chat_templates/renders.json   every template x conversation (+ variants)
  tests/fixtures/chat_templates/snippets.json  small templates exercising the expression language
Each case holds the template (name or text), the full render context, and either "expected"
(the rendered text) or "error" ({"type", "message"}) when jinja2 raised.

strftime_now uses a fixed clock, 2024-09-26 10:30:00, so the C++ test can inject the same.
Run: /tmp/venvtest/bin/python tools/gen_chat_template_fixtures.py   (needs jinja2 >= 3.1)
"""
import copy
import json
import pathlib
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "chat_templates"
FIXED_NOW = datetime(2024, 9, 26, 10, 30, 0)

BOS = {"smollm2": "", "llama2": "<s>", "llama3": "<|begin_of_text|>", "llama3_1": "<|begin_of_text|>",
       "llama3_2": "<|begin_of_text|>", "mistral_v01": "<s>", "mistral_v03": "<s>", "qwen2_5": "",
       "qwen3": ""}
EOS = {"smollm2": "<|im_end|>", "llama2": "</s>", "llama3": "<|eot_id|>", "llama3_1": "<|eot_id|>",
       "llama3_2": "<|eot_id|>", "mistral_v01": "</s>", "mistral_v03": "</s>", "qwen2_5": "<|im_end|>",
       "qwen3": "<|im_end|>"}


class AssistantTracker(Extension):
    """transformers' {% generation %} ... {% endgeneration %}: renders the body unchanged."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    def _generation_support(self, caller):
        return caller()


def make_environment() -> ImmutableSandboxedEnvironment:
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return FIXED_NOW.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location — «quoted» \"text\"",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 14, "default": 1.5},
            },
            "required": ["location"],
        },
        "return": {"type": "object"},
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "description": "Current time", "parameters": {"type": "object", "properties": {}}},
}

SYSTEM = {"role": "system", "content": "You are a concise assistant.\n"}
CONVERSATIONS = {
    "single_user": [{"role": "user", "content": "Hello!"}],
    "system_multi_turn": [
        SYSTEM,
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "  4  "},
        {"role": "user", "content": "And 3 + 3?"},
    ],
    "multi_turn_no_system": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
        {"role": "assistant", "content": "Why did the chicken cross the road?"},
    ],
    "unicode": [
        {"role": "system", "content": "Réponds en français. 日本語もOK 🙂"},
        {"role": "user", "content": "  Ça va? \"quotes\" and \\backslash\\ and\ttabs\n\nnewlines  "},
        {"role": "assistant", "content": "Très bien — merci! 👍"},
        {"role": "user", "content": "Ünïcödé: ß ñ ø 中文 한국어 עברית"},
    ],
    "tool_calls": [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": "",
         "tool_calls": [{"id": "call12345", "type": "function",
                         "function": {"name": "get_current_weather",
                                      "arguments": {"location": "Paris, France", "unit": "celsius"}}}]},
        {"role": "tool", "tool_call_id": "call12345", "name": "get_current_weather",
         "content": "{\"temperature\": 22, \"unit\": \"celsius\", \"note\": \"ensoleillé\"}"},
        {"role": "assistant", "content": "It is 22 °C in Paris."},
        {"role": "user", "content": "Thanks!"},
    ],
    "parallel_tool_calls": [
        {"role": "user", "content": "Weather in Paris and Tokyo, and the time?"},
        {"role": "assistant", "content": "Let me check.",
         "tool_calls": [
             {"id": "callAAAAA", "type": "function",
              "function": {"name": "get_current_weather", "arguments": {"location": "Paris"}}},
             {"id": "callBBBBB", "type": "function",
              "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Tokyo\"}"}},
             {"id": "callCCCCC", "type": "function", "function": {"name": "get_time", "arguments": {}}},
         ]},
        {"role": "tool", "tool_call_id": "callAAAAA", "content": "sunny"},
        {"role": "tool", "tool_call_id": "callBBBBB", "content": "rainy"},
        {"role": "tool", "tool_call_id": "callCCCCC", "content": "12:00"},
    ],
    "reasoning": [
        {"role": "user", "content": "Is 17 prime?"},
        {"role": "assistant", "content": "<think>\nCheck divisors up to 4.\n</think>\n\nYes, 17 is prime."},
        {"role": "user", "content": "And 21?"},
        {"role": "assistant", "content": "No: 21 = 3 × 7.", "reasoning_content": "\n3 divides 21.\n"},
    ],
    "reasoning_last_turn": [
        {"role": "system", "content": "Think step by step."},
        {"role": "user", "content": "2^10?"},
        {"role": "assistant", "content": "<think>\n2^10 = 1024\n</think>\n\n1024"},
    ],
    "bad_alternation": [
        {"role": "user", "content": "one"},
        {"role": "user", "content": "two"},
    ],
}

# (conversation, add_generation_prompt, tools, extra variables)
VARIANTS = [
    ("single_user", True, None, {}),
    ("single_user", False, None, {}),
    ("system_multi_turn", True, None, {}),
    ("system_multi_turn", False, None, {}),
    ("multi_turn_no_system", False, None, {}),
    ("unicode", True, None, {}),
    ("tool_calls", True, [WEATHER_TOOL, TIME_TOOL], {}),
    ("tool_calls", False, None, {}),
    ("parallel_tool_calls", True, [WEATHER_TOOL, TIME_TOOL], {}),
    ("reasoning", True, None, {}),
    ("reasoning", True, None, {"enable_thinking": False}),
    ("reasoning_last_turn", False, None, {}),
    ("bad_alternation", True, None, {}),
]

# Template-specific variants: Llama 3.1's builtin tools and date, tools in the system message.
EXTRA_VARIANTS = {
    "llama3_1": [
        ("tool_calls", True, [WEATHER_TOOL], {"tools_in_user_message": False, "date_string": "01 Jan 2025"}),
        ("single_user", True, None, {"builtin_tools": ["brave_search", "wolfram_alpha", "code_interpreter"]}),
        ("builtin_tool_call", False, None, {"builtin_tools": ["brave_search", "wolfram_alpha"]}),
    ],
    "llama3_2": [
        ("tool_calls", True, [WEATHER_TOOL], {"tools_in_user_message": False}),
        ("single_user", True, None, {"date_string": "05 Mar 2025"}),
    ],
    "mistral_v03": [
        ("bad_tool_call_id", True, None, {}),
    ],
    "qwen3": [
        ("tool_calls", False, [WEATHER_TOOL], {"enable_thinking": True}),
    ],
}
CONVERSATIONS["builtin_tool_call"] = [
    {"role": "user", "content": "Search the weather"},
    {"role": "assistant", "tool_calls": [{"type": "function", "function": {
        "name": "brave_search", "arguments": {"query": "weather in Menlo Park", "count": "3"}}}]},
    {"role": "ipython", "content": {"result": ["sunny", 21]}},
]
CONVERSATIONS["bad_tool_call_id"] = [
    {"role": "user", "content": "weather?"},
    {"role": "assistant", "tool_calls": [{"id": "short", "type": "function",
                                          "function": {"name": "get_time", "arguments": {}}}]},
]

# Small templates for the expression language: (name, template, variables).
SNIPPETS = [
    ("literals", "{{ 1 }}|{{ -2 }}|{{ 1.5 }}|{{ 1e3 }}|{{ 'a\\tb\\u00e9\\x41' }}|{{ \"q'\" }}|{{ true }}|{{ none }}|{{ [1, 'a', none, true, 2.0] }}|{{ {'k': [1, {'n': none}]} }}|{{ (1, 'x') }}|{{ (1,) }}", {}),
    ("arithmetic", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 4 / 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 1 + 2 * 3 - 4 }} {{ (1 + 2) * 3 }} {{ 'ab' * 3 }} {{ [1] * 3 }} {{ 'a' ~ 1 ~ none ~ true }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ 1/3 }} {{ 2.5 + 1 }}", {}),
    ("comparisons", "{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 1 == 1.0 }} {{ 'a' == 'a' }} {{ 'a' != 'b' }} {{ [1, 2] == [1, 2] }} {{ 'ab' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 'x' in 'xyz' }} {{ 'k' in d }} {{ 3 in [1, 2] }} {{ 3 not in [1, 2] }} {{ true == 1 }} {{ none == none }} {{ d == {'k': 1, 'j': [2]} }}", {"d": {"j": [2], "k": 1}}),
    ("logic", "{{ 0 or 'x' }} {{ 'a' and 'b' }} {{ '' and 'b' }} {{ not [] }} {{ 'y' if x else 'n' }} {{ 'y' if not x }}| {{ x or y or 'z' }}", {"x": 0, "y": ""}),
    ("attributes", "{{ d.a }}|{{ d['a'] }}|{{ d.missing }}|{{ d.list[1] }}|{{ d.list[-1] }}|{{ d.list[5] }}|{{ d['b-c'] }}|{{ d.list.0 }}|{{ s[0] }}{{ s[-1] }}|{{ d.get('a') }}|{{ d.get('zz', 'dflt') }}|{{ d.get('zz') }}", {"d": {"a": "A", "b-c": 3, "list": [10, 20, 30]}, "s": "héllo"}),
    ("slicing", "{{ l[1:] }} {{ l[:-1] }} {{ l[::-1] }} {{ l[::2] }} {{ l[-2:] }} {{ l[5:] }} {{ l[1:4:2] }} {{ l[3:0:-1] }} {{ s[::-1] }} {{ s[1:3] }} {{ s[:-1] }} {{ (1, 2, 3)[1:] }}", {"l": [0, 1, 2, 3, 4], "s": "añb€c"}),
    ("string_methods", "{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'xxhixx'.strip('x') }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'a,b,c'.rsplit(',', 1) }}|{{ 'hello world'.title() }}|{{ 'ABC'.lower() }}|{{ 'abc'.upper() }}|{{ 'hello'.capitalize() }}|{{ 'aaa'.replace('a', 'b', 2) }}|{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x', 'c')) }}|{{ '-'.join(['a', 'b']) }}|{{ 'abcabc'.find('c') }}|{{ 'abcabc'.rfind('c') }}|{{ 'abcabc'.count('bc') }}|{{ '{} and {}'.format(1, 'b') }}|{{ '{name}!'.format(name='Bo') }}|{{ 'a\\nb\\r\\nc'.splitlines() }}|{{ '42'.isdigit() }}|{{ 'ab'.isalpha() }}|{{ 'préfix'.removeprefix('pré') }}", {"s": "  \t pad \n "}),
    ("string_unicode", "{{ 'straße'.upper() }}|{{ 'ÉCOLE Ωmega'.lower() }}|{{ 'élan vital'.title() }}|{{ 'ñandú'|capitalize }}|{{ s|length }}|{{ s|list }}|{{ s|reverse }}|{{ '\u3000 x \u00a0'.strip() }}|{{ 'a→b→c'.split('→') }}", {"s": "日本🙂"}),
    ("filters_basic", "{{ '  x  '|trim }}|{{ 'xx-y-xx'|trim('x') }}|{{ 'Hi'|upper }}{{ 'Hi'|lower }}|{{ 'hi there'|title }}|{{ 'hI'|capitalize }}|{{ [1, 2, 3]|length }}{{ 'abc'|count }}{{ d|length }}|{{ x|default('dflt') }}|{{ ''|default('dflt', true) }}|{{ none|default('dflt') }}|{{ [1, 2]|join(', ') }}|{{ [1, 2]|join }}|{{ [3, 1]|first }}{{ [3, 1]|last }}|{{ 'abc'|first }}|{{ []|first }}|{{ -3|abs }}|{{ 3.7|int }}|{{ '42'|int + 1 }}|{{ ' 12 '|int }}|{{ 'x'|int }}|{{ 'x'|int(7) }}|{{ '4.5'|float }}|{{ 3|float }}|{{ 2.5|round }}|{{ 3.5|round }}|{{ 3.14159|round(2) }}|{{ 2.675|round(2) }}|{{ 3.2|round(method='ceil') }}|{{ 42|string ~ 'x' }}|{{ 'a<b>&'|e }}|{{ 'x'|safe }}", {"d": {"a": 1}}),
    ("filters_collections", "{{ d|items|list }}|{{ d|dictsort }}|{{ d|dictsort(reverse=true) }}|{{ d|dictsort(by='value') }}|{{ [3, 1, 2]|sort }}|{{ ['b', 'A', 'c']|sort }}|{{ ['b', 'A', 'c']|sort(case_sensitive=true) }}|{{ [3, 1, 2]|sort(reverse=true) }}|{{ people|sort(attribute='age')|map(attribute='name')|list }}|{{ ['a', 'A', 'b', 'a']|unique|list }}|{{ [1, 2, 1]|unique|list }}|{{ [1, 5, 3]|max }}{{ [4, 2, 9]|min }}|{{ [1, 2, 3]|sum }}|{{ people|sum(attribute='age') }}|{{ people|map(attribute='name')|join(',') }}|{{ people|map(attribute='missing', default='?')|list }}|{{ ['a', 'b']|map('upper')|list }}|{{ [1, 2, 3]|reverse|list }}|{{ 'abc'|list }}|{{ d|list }}|{{ [1, 2, 3, 4]|select('even')|list }}|{{ [1, 2, 3, 4]|reject('odd')|list }}|{{ [0, 1, '', 'a']|select|list }}|{{ people|selectattr('age', 'gt', 30)|map(attribute='name')|list }}|{{ people|rejectattr('admin')|map(attribute='name')|list }}|{{ people|selectattr('admin')|list|length }}|{{ people|selectattr('name', 'equalto', 'Bo')|first }}|{{ [1, 2]|map('string')|join('+') }}", {"d": {"b": 2, "a": 3, "C": 1}, "people": [{"name": "Al", "age": 40, "admin": True}, {"name": "Bo", "age": 25}, {"name": "Cy", "age": 33, "admin": False}]}),
    ("tojson", "{{ v|tojson }}|{{ v|tojson(indent=2) }}|{{ v|tojson(separators=(',', ':')) }}|{{ v|tojson(sort_keys=true) }}|{{ v|tojson(ensure_ascii=true) }}|{{ 'a\"b\\\\c\\n'|tojson }}|{{ []|tojson(indent=2) }}|{{ {}|tojson }}|{{ none|tojson }}|{{ 1.0|tojson }}|{{ (1, 2)|tojson }}|{{ v|items|list|tojson }}", {"v": {"z": [1, 2.5, None, True, False, "é🙂"], "a": {"b": {}, "c": []}, "ctl": "\u0001\u001f\u007f"}}),
    ("indent", "{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}|{{ 'x\\ny'|indent('> ') }}", {}),
    ("tests", "{{ x is defined }}{{ y is defined }}{{ y is undefined }}{{ none is none }}{{ 0 is none }}{{ 's' is string }}{{ 1 is string }}{{ d is mapping }}{{ l is mapping }}{{ l is iterable }}{{ 's' is iterable }}{{ d is iterable }}{{ 1 is iterable }}{{ y is iterable }}{{ l is sequence }}{{ 's' is sequence }}{{ 1 is number }}{{ 1.5 is number }}{{ true is number }}{{ 1 is integer }}{{ 1.0 is float }}{{ true is boolean }}{{ true is true }}{{ 1 is true }}{{ false is false }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(4) }}{{ 1 is eq 1 }}{{ 'a' is equalto 'a' }}{{ 2 is gt 1 }}{{ 2 is lt(1) }}{{ 2 is in [1, 2] }}{{ x is not none }}{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ range is callable }}{{ 'upper' is filter }}{{ 'odd' is test }}", {"x": 1, "d": {}, "l": [1]}),
    ("for_loops", "{% for x in l %}[{{ loop.index }}/{{ loop.length }} {{ loop.index0 }} {{ loop.revindex }} {{ loop.first }} {{ loop.last }} {{ loop.previtem }} {{ loop.nextitem }} {{ loop.cycle('a', 'b') }}]{% endfor %}|{% for x in l if x > 1 %}{{ x }}:{{ loop.index }}/{{ loop.length }} {% endfor %}|{% for x in [] %}no{% else %}empty{% endfor %}|{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{% for k in d %}{{ k }}{% endfor %}|{% for c in 'ab' %}{{ c }}.{% endfor %}|{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}|{% for x in l %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}|{% for x in undefined_var %}x{% endfor %}|{% for i in range(3) %}{{ i }}{% endfor %}{% for i in range(5, 0, -2) %}{{ i }}{% endfor %}", {"l": [1, 2, 3, 4], "d": {"a": 1, "b": 2}}),
    ("scoping", "{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = i * 10 %}{{ x }},{% endfor %}{{ x }}|{% for i in [1, 2] %}{% if i == 2 %}{{ y }}{% endif %}{% set y = i %}{% endfor %}[{{ y }}]|{% if true %}{% set z = 5 %}{% endif %}{{ z }}|{% set ns = namespace(n=0, items=[]) %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}{% set ns.items = ns.items + [i] %}{% endfor %}{{ ns.n }} {{ ns.items }}|{% set a, b = 1, 2 %}{{ a }}{{ b }}|{% with w = 3 %}{{ w }}{% endwith %}[{{ w }}]|{% set captured %}A{{ 1 + 1 }}B{% endset %}{{ captured }}|{% set up | upper %}shout{% endset %}{{ up }}", {}),
    ("macros", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Al') }} {{ greet('Bo', '?') }} {{ greet(name='Cy', punct='.') }} {{ greet() }}|{% macro outer() %}[{{ caller() }}]{% endmacro %}{% call outer() %}inside {{ 1 + 1 }}{% endcall %}|{% macro rec(n) %}{{ n }}{% if n > 0 %}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(3) }}|{% macro uses_global() %}{{ g }}{% endmacro %}{% set g = 'late' %}{{ uses_global() }}|{% filter upper %}filtered {{ 'text' }}{% endfilter %}", {}),
    ("whitespace_control", "<{%- if true -%}  x  {%- endif -%}>\n  {% if true %}\n    kept\n  {% endif %}\n{{- ' tight ' -}}\n  {# comment #}\nafter\n    {%+ if true %}plus{% endif %}\n{% raw %}{{ not parsed }} {% if %}{% endraw %}\n{%- generation -%} gen {%- endgeneration %}\nend  \n", {}),
    ("whitespace_lstrip", "a\n  {% for i in [1, 2] %}\n  - {{ i }}\n  {% endfor %}\nb {% if true %}inline{% endif %} c\n\t{#- note #}\n  {{ 'var' }}  \n", {}),
    ("string_formatting", "{{ '%s-%d' % ('a', 3) }}|{{ '%s!' % 'x' }}|{{ '%(k)s' % {'k': 'v'} }}|{{ '%.2f' % 3.14159 }}|{{ '%s and %s'|format('a', 'b') }}|{{ '%x' % 255 }}", {}),
    ("globals", "{{ range(4)|list }}|{{ dict(a=1, b='x') }}|{{ namespace(a=1).a }}|{{ strftime_now('%Y-%m-%d %H:%M') }}|{{ strftime_now('%d %b %Y') }}", {}),
    ("undefined_behaviour", "[{{ missing }}][{{ missing|length }}][{{ missing|default('d') }}][{{ missing is defined }}][{% if missing %}t{% else %}f{% endif %}][{{ d.nope }}][{{ missing == missing }}][{{ 'x' in missing }}][{{ missing|string }}][{{ missing|list }}][{{ l[10] }}][{{ missing|trim }}][{{ missing ~ 'x' }}]", {"d": {}, "l": []}),
    ("jinja_quirks", "{{ 'b,A,c'|title }}|{{ 'hello-world (x)'|title }}|{{ 2|round }}|{{ 1234|round(-2) }}|{{ missing is callable }}|{{ 2.5 is odd }}|{% if [1]|select('gt', 5) %}generator is true{% endif %}|{{ [1, 2]|select|list|length }}|{{ 'abc' % [1] }}|{{ 0|map('upper')|list }}|{{ (1, 2) + (3,) }}|{{ 'x'|wordcount }}{{ 'a b-c 🙂 é'|wordcount }}", {}),
    # Errors (the test expects an anvil::Error; raise_exception's message must appear in it).
    ("error_raise", "{{ raise_exception('custom failure: ' ~ x) }}", {"x": 42}),
    ("error_undefined_attribute", "{{ missing.attr }}", {}),
    ("error_undefined_call", "{{ missing() }}", {}),
    ("error_type_add", "{{ 'a' + 1 }}", {}),
    ("error_compare", "{{ 'a' < 1 }}", {}),
    ("error_division", "{{ 1 // 0 }}", {}),
    ("error_not_iterable", "{% for x in 5 %}{% endfor %}", {}),
    ("error_unpack", "{% for a, b in [[1, 2, 3]] %}{% endfor %}", {}),
    ("error_namespace_set", "{% set d = {} %}{% set d.x = 1 %}", {}),
    ("error_slice_step", "{{ [1][::0] }}", {}),
    ("error_tojson_undefined", "{{ missing|tojson }}", {}),
    ("error_range", "{{ range(1000000)|length }}", {}),
    ("error_generator_length", "{{ [1]|select|length }}", {}),
    ("error_indent_number", "{{ 5|indent }}", {}),
    ("error_int_undefined", "{{ missing|int }}", {}),
    ("error_slice_none", "{{ x[1:] }}", {"x": None}),
    ("error_unhashable", "{{ [1] in {'a': 1} }}", {}),
    ("error_format_leftover", "{{ 'ab' % (1, 2) }}", {}),
]


def render(env, template_text, context):
    try:
        return {"expected": env.from_string(template_text).render(**copy.deepcopy(context))}
    except jinja2.exceptions.TemplateError as error:
        return {"error": {"type": type(error).__name__, "message": str(error)}}
    except (TypeError, ValueError, ZeroDivisionError, OverflowError, KeyError, IndexError) as error:
        return {"error": {"type": type(error).__name__, "message": str(error)}}


def template_renders(env):
    cases = []
    for path in sorted(FIXTURES.glob("*.jinja")):
        family = path.stem
        text = path.read_text(encoding="utf-8")
        for conversation, add_generation_prompt, tools, extra in VARIANTS + EXTRA_VARIANTS.get(family, []):
            context = {
                "messages": CONVERSATIONS[conversation],
                "tools": tools,
                "documents": None,
                "add_generation_prompt": add_generation_prompt,
                "bos_token": BOS[family],
                "eos_token": EOS[family],
            }
            context.update(extra)
            case = {"template": family, "conversation": conversation, "context": context}
            case.update(render(env, text, context))
            cases.append(case)
    return cases


def snippet_renders(env):
    cases = []
    for name, text, variables in SNIPPETS:
        case = {"name": name, "template": text, "context": variables}
        case.update(render(env, text, variables))
        if name.startswith("error_") and "error" not in case:
            raise SystemExit(f"snippet {name} was expected to fail but rendered {case['expected']!r}")
        if not name.startswith("error_") and "error" in case:
            raise SystemExit(f"snippet {name} failed: {case['error']}")
        cases.append(case)
    return cases


def write(name, cases):
    path = FIXTURES / name
    path.write_text(json.dumps(cases, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    errors = sum("error" in case for case in cases)
    print(f"{path.relative_to(ROOT)}: {len(cases)} cases ({errors} raise)")


def main() -> None:
    env = make_environment()
    write("renders.json", template_renders(env))
    write("snippets.json", snippet_renders(env))


if __name__ == "__main__":
    main()
