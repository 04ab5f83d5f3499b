#!/usr/bin/env python3
"""Copies deploy/systemd/ files into the write_files entries of deploy/vm/user-data.yaml.

cloud-init cannot fetch files from this repository, so user-data.yaml carries copies of the
unit files, the sysusers entry and the configuration. Edit those in deploy/systemd/, then run
`python3 deploy/vm/sync-user-data.py`; deploy/validate.sh fails while the copies differ.
Plain text rewrite (no YAML library needed), so comments in user-data.yaml are kept.
"""
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
SYSTEMD = HERE.parent / "systemd"
USER_DATA = HERE / "user-data.yaml"

# write_files path on the VM -> source file in deploy/systemd/
COPIES = {
    "/etc/sysusers.d/tradenet.conf": "tradenet.sysusers.conf",
    "/etc/tradenet/tradenet.toml": "tradenet.toml",
    "/etc/systemd/system/tradenet-catalog.service": "tradenet-catalog.service",
    "/etc/systemd/system/tradenet-order@.service": "tradenet-order@.service",
    "/etc/systemd/system/tradenet-frontend.service": "tradenet-frontend.service",
    "/etc/systemd/system/tradenet.target": "tradenet.target",
}
INDENT = " " * 6


def sync(text: str) -> str:
    lines = text.splitlines(keepends=True)
    out, i, done = [], 0, set()
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        stripped = line.strip()
        if not stripped.startswith("- path: "):
            continue
        path = stripped[len("- path: "):].strip()
        if path not in COPIES:
            continue
        # Copy the entry's other keys up to and including `content: |`.
        while i < len(lines) and lines[i].strip() != "content: |":
            out.append(lines[i])
            i += 1
        if i == len(lines):
            sys.exit(f"sync-user-data: no 'content: |' for {path}")
        out.append(lines[i])
        i += 1
        # Drop the old block: lines indented by at least INDENT, or blank.
        while i < len(lines) and (lines[i].startswith(INDENT) or not lines[i].strip()):
            if not lines[i].strip() and (i + 1 == len(lines) or not lines[i + 1].startswith(INDENT)):
                break  # the blank line that separates entries stays
            i += 1
        source = (SYSTEMD / COPIES[path]).read_text()
        for src_line in source.splitlines():
            out.append(INDENT + src_line + "\n" if src_line else "\n")
        done.add(path)
    missing = set(COPIES) - done
    if missing:
        sys.exit(f"sync-user-data: user-data.yaml has no write_files entry for {sorted(missing)}")
    return "".join(out)


if __name__ == "__main__":
    old = USER_DATA.read_text()
    new = sync(old)
    if new != old:
        USER_DATA.write_text(new)
        print(f"sync-user-data: updated {USER_DATA}")
    else:
        print("sync-user-data: already in sync")
