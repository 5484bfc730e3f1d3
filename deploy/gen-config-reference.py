#!/usr/bin/env python3
"""Prints the ASTRO_* configuration reference (markdown) from the daemons' own --help, so the
docs cannot drift from the code. Usage: deploy/gen-config-reference.py BUILD_DIR
(docs/operations.md holds its output between the "config-reference" markers)."""
import re, subprocess, sys

DAEMONS = ["ingest", "leaflet", "archiver", "query", "broadcast"]
LINE = re.compile(r"^  (ASTRO_[A-Z0-9_]+) \((.*)\)$")


def parse(binary):
    text = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10,
                          env={"PATH": "/usr/bin:/bin"}).stdout
    out, cur = {}, None
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            kind, _, default = m.group(2).partition(", default ")
            if kind.endswith(", secret"):
                kind = kind[:-len(", secret")] + " (secret)"
            cur = m.group(1)
            out[cur] = [kind.replace("|", "\\|"), default or "(none)", ""]
        elif cur and line.startswith("      "):
            out[cur][2] = (out[cur][2] + " " + line.strip()).strip().replace("|", "\\|")
    return out


def table(rows, names):
    lines = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    for n in names:
        kind, default, desc = rows[n]
        lines.append("| `%s` | %s | `%s` | %s |" % (n, kind, default, desc))
    return "\n".join(lines)


def main():
    build = sys.argv[1]
    helps = {d: parse("%s/services/%s/astro-%s" % (build, d, d)) for d in DAEMONS}
    common = [n for n in helps[DAEMONS[0]] if all(n in helps[d] for d in DAEMONS)]
    print("### Every daemon\n")
    print("Defaults that differ per daemon (ASTRO_HTTP_PORT) show ingest's; see each section.\n")
    print(table(helps[DAEMONS[0]], common))
    for d in DAEMONS:
        own = [n for n in helps[d] if n not in common]
        port = helps[d].get("ASTRO_HTTP_PORT", ["", "?", ""])[1]
        print("\n### astro-%s (ASTRO_HTTP_PORT default %s)\n" % (d, port))
        print(table(helps[d], own) if own else "Only the settings of every daemon.")


main()
