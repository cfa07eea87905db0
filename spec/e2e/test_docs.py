"""The project's docs stand on their own: the portal table is in the
repository (docs/PORTAL.md) and agrees with stdlib/reasons.lua, and nothing
points outside the repository for it."""
import os
import re
import subprocess
import unittest

from spec.e2e.harness import ROOT


def reasons_rows():
    """{key: (row, code, enhanced, text, cause)} for reasons that are portal rows."""
    out = subprocess.run(
        ["lua5.4", "-e", 'for k, r in pairs(dofile("stdlib/reasons.lua")) do if r.row then '
                         'io.write(k, "\\t", r.row, "\\t", r.code, "\\t", r.enhanced, "\\t", r.text, '
                         '"\\t", r.cause, "\\n") end end'],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    table = {}
    for line in out.splitlines():
        k, row, code, enh, text, cause = line.split("\t")
        table[k] = (int(row), code, enh, text, cause)
    return table


def portal_rows():
    """docs/PORTAL.md's table: {row number: the table line}."""
    rows = {}
    for line in portal_doc().splitlines():
        m = re.match(r"\| (\d+) \| `[A-Z]", line)
        if m:
            rows[int(m.group(1))] = line
    return rows


def portal_doc():
    with open(os.path.join(ROOT, "docs/PORTAL.md")) as f:
        return f.read()


class PortalDoc(unittest.TestCase):
    def test_docs_portal_has_the_14_rows(self):
        self.assertEqual(sorted(portal_rows()), list(range(1, 15)))

    def test_each_reason_row_has_its_text_reply_cause_and_key_in_docs_portal(self):
        rows = portal_rows()
        for key, (row, code, enh, text, cause) in reasons_rows().items():
            with self.subTest(key):
                line = rows[row]
                self.assertIn(f"`{text}`", line)
                self.assertIn(f"{code} {enh}", line)
                self.assertIn(cause, portal_doc())
                self.assertIn(f"`{key}`", line)

    def test_nothing_points_outside_the_repository_for_the_table(self):
        for path in ("README.md", "stdlib/reasons.lua", "stdlib/dnsbl.lua", "docs/ARCHITECTURE.md"):
            with open(os.path.join(ROOT, path)) as f:
                self.assertNotIn("shared/PORTAL", f.read(), path)
        with open(os.path.join(ROOT, "README.md")) as f:
            self.assertIn("docs/PORTAL.md", f.read())
