"""Open the built docs site in a real browser and check that it renders (make docs).

  python tests/docs_render.py HTML_DIR

Headless Chromium (installed from apt when missing and running as root) loads the site's index,
the collection's page and a module page from disk: a screenshot of each (PNG, decoded here: it
must not be blank - the theme's colours and text are drawn) and the DOM after rendering (it must
show the collection's modules, the roles, and the module's parameters and return values).
Screenshots are left next to the site (HTML_DIR/../screenshots) for a person to look at.
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

PAGES = [
    # page, texts its rendered DOM must contain
    ("index.html", ["netsvc.resilience"]),
    ("collections/netsvc/resilience/index.html",
     ["Netsvc.Resilience", "sysctl_tcp module", "service_restart_policy module", "harden_restart role",
      "audit_report filter", "Design and defaults"]),
    ("collections/netsvc/resilience/service_restart_policy_module.html",
     ["netsvc.resilience.service_restart_policy module", "Parameters", "restart_sec", "Return Values", "Examples"]),
]


def browser():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]
        if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL, check=False)
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=False)
    return shutil.which("chromium")


def run(chromium, profile, *args):
    argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--user-data-dir=" + profile, "--window-size=1280,1400"] + list(args)
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=120, check=False)


def png_pixels(path):
    """(width, height, set of distinct RGB colours) of an 8-bit RGB/RGBA PNG."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, ctype = header[:4]
    assert depth == 8 and ctype in (2, 6), "unexpected PNG format %s" % (header,)
    bpp = 3 if ctype == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    prev, colours = bytearray(stride), set()
    for y in range(height):
        ftype, row = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = row[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                row[i] = (row[i] + a) & 255
            elif ftype == 2:
                row[i] = (row[i] + b) & 255
            elif ftype == 3:
                row[i] = (row[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if y % 4 == 0:  # every 4th row is plenty to tell a page from a blank one
            colours.update(bytes(row[i:i + 3]) for i in range(0, stride, bpp * 2))
        prev = row
    return width, height, colours


def main():
    html = os.path.abspath(sys.argv[1])
    shots = os.path.join(os.path.dirname(html), "screenshots")
    os.makedirs(shots, exist_ok=True)
    chromium = browser()
    if not chromium:
        print("[docs] no Chromium: cannot check the rendered site")
        return 1
    failed = 0
    with tempfile.TemporaryDirectory() as profile:
        for page, texts in PAGES:
            url = "file://" + os.path.join(html, page)
            png = os.path.join(shots, page.replace("/", "_").replace(".html", ".png"))
            shot = run(chromium, profile, "--screenshot=" + png, url)
            dom = run(chromium, profile, "--dump-dom", url).stdout
            problems = []
            if shot.returncode != 0 or not os.path.exists(png):
                problems.append("no screenshot: %s" % shot.stderr[-300:])
            else:
                width, height, colours = png_pixels(png)
                if (width, height) != (1280, 1400) or len(colours) < 8:
                    problems.append("screenshot %dx%d with %d colours: blank" % (width, height, len(colours)))
            missing = [t for t in texts if t not in dom]
            if missing:
                problems.append("not rendered: %s" % missing)
            print("[docs] %-62s %s" % (page, "FAIL: " + "; ".join(problems) if problems else "renders (%s)" % png))
            failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
