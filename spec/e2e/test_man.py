"""The man pages (man/) render with `man -l`, and they keep up with the code:
every config key engine/lib/conf.c reads is in mxgate.lua(5), every session
field, primitive and hook the rules can use is in mxgate-rules(7). A key
added to conf.c without its line in man/mxgate.lua.5 fails here, by name."""
import glob
import os
import re
import subprocess
import unittest

from spec.e2e.harness import ROOT

PAGES = ["mxgate.8", "ruletest.8", "mxgate.lua.5", "mxgate-rules.7"]


def render(page):
    """The page as `man -l` shows it, lines joined, words never hyphenated."""
    env = dict(os.environ, MANWIDTH="250", LC_ALL="C.UTF-8", MANPAGER="cat", PAGER="cat")
    r = subprocess.run(["man", "--warnings", "-l", os.path.join(ROOT, "man", page)],
                       capture_output=True, text=True, env=env, timeout=60)
    return r, re.sub(r"[\u2010-](\n\s*)", "", r.stdout)


def source(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


def conf_keys(src):
    """Keys conf.c reads: the known_keys list, and sub-keys qualified by
    their table (limits.max_errors), from opt_*(r, "table", "field") and from
    lua_getfield(L, -1, "field") after getkey(r, "table")."""
    keys = set()
    m = re.search(r"known_keys\[\]\s*=\s*\{(.*?)\};", src, re.S)
    if m:
        keys.update(re.findall(r'"(\w+)"', m.group(1)))
    parent = None
    for line in src.splitlines():
        g = re.search(r'getkey\(&?r, "(\w+)"\)', line)
        if g:
            parent = g.group(1)
        for p, f in re.findall(r'opt_\w+\(&?r, "(\w+)", "(\w+)"', line):
            keys.add(p + "." + f)
        for f in re.findall(r'lua_getfield\([^,]+, -1, "(\w+)"\)', line):
            if parent:
                keys.add(parent + "." + f)
        for k in re.findall(r'opt_\w+\(&?r, "(\w+)", NULL', line):
            keys.add(k)
    return keys


class ManPages(unittest.TestCase):
    def test_every_page_renders_with_man_l_without_warnings(self):
        self.assertEqual(sorted(PAGES), sorted(os.path.basename(p) for p in glob.glob(
            os.path.join(ROOT, "man/*.[0-9]"))))
        for page in PAGES:
            with self.subTest(page):
                r, text = render(page)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stderr.strip(), "", page)
                name = page.rsplit(".", 1)[0]
                self.assertIn("NAME", text)
                self.assertIn(name + " \u2014 " if "\u2014" in text else name + " - ", text)
                self.assertIn("SEE ALSO", text)

    def test_every_config_key_in_conf_c_is_in_mxgate_lua_5(self):
        keys = conf_keys(source("engine/lib/conf.c"))
        self.assertGreater(len(keys), 50)          # the extraction still works
        _, text = render("mxgate.lua.5")
        # "state.greylist" read inside state.fail may be written state.fail.greylist.
        missing = sorted(k for k in keys if not re.search(
            r"(?<![\w.])" + re.escape(k).replace(r"\.", r"\.(?:\w+\.)?", 1) + r"(?!\w)", text))
        self.assertEqual(missing, [], "config keys read in engine/lib/conf.c but not described "
                                      "in man/mxgate.lua.5")

    def test_every_session_field_primitive_and_hook_is_in_mxgate_rules_7(self):
        _, text = render("mxgate-rules.7")
        fields = set(re.findall(r'strcmp\(k, "(\w+)"\)', source("lua/lua_session.c")))
        self.assertGreater(len(fields), 20)
        prims = set()
        for path in glob.glob(os.path.join(ROOT, "lua/*.c")):
            prims.update(re.findall(r'\{ "(\w+)", l_\w+ \}', source(os.path.relpath(path, ROOT))))
        prims -= {"__index", "__newindex", "__tostring", "__gc", "__call", "__len", "__pairs"}
        prims = {p for p in prims if not p.startswith("_")}
        hooks = re.search(r"local HOOKS = \{(.*?)\}", source("stdlib/mxgate.lua"), re.S).group(1)
        missing = sorted(["s." + f for f in fields if "s." + f not in text] +
                         [p for p in prims if not re.search(r"\b" + p + r"\(", text)] +
                         [h for h in re.findall(r"(\w+) = true", hooks) if h not in text] +
                         [v for v in ("accept", "deny", "defer", "drop", "warn", "rule",
                                      "replace", "disable", "reason") if v + "(" not in text])
        self.assertEqual(missing, [], "not described in man/mxgate-rules.7")

    def test_every_ruletest_option_is_in_ruletest_8(self):
        src = source("tools/ruletest.c")
        opts = re.findall(r'\{ "([\w-]+)", (?:no|required)_argument,', src)
        self.assertGreater(len(opts), 10)          # the extraction still works
        _, text = render("ruletest.8")
        options = text[text.index("The options are as follows"):text.index("EXIT STATUS")]
        # Each is described in the option list, and shown in the synopsis.
        missing = sorted("--" + o for o in opts
                         if not re.search(r"(?m)^\s+(?:-\w, )?--%s\b" % o, options)
                         or "--" + o not in text[:text.index("DESCRIPTION")])
        self.assertEqual(missing, [], "ruletest options not described in man/ruletest.8")

    def test_the_pages_cite_the_portal_table(self):
        for page in ("mxgate.8", "mxgate-rules.7"):
            self.assertIn("PORTAL.md", render(page)[1])
