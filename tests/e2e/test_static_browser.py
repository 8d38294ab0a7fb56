"""A real browser against `fastcore serve` with no application: headless
Chromium loads a page whose stylesheet, script and image all come from the
static server, and the test checks what the browser made of them.

- the access log (--access-log) shows the browser asked for every asset and
  got each with 200 or 304;
- the screenshot (a PNG this file decodes itself: zlib plus the five filter
  types) has the body background the stylesheet sets, the block the script
  draws, and both colours of the image;
- the DOM after scripts (--dump-dom) has the title and element the script
  wrote and the size of the decoded image.

The page uses no text, so no font decides the outcome.
"""
import os
import re
import shutil
import signal
import struct
import subprocess
import zlib

import pytest

CHROMIUM_TIMEOUT = 60

CSS_BACKGROUND = (0, 128, 255)     # body, from style.css
JS_BLOCK = (40, 200, 60)           # a div app.js creates with an inline style
IMAGE_LEFT = (250, 20, 200)        # the two halves of pixel.png
IMAGE_RIGHT = (255, 220, 0)
IMAGE_SIZE = (16, 8)
JS_TITLE = "fastcore static ok"

INDEX_HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>before scripts</title>
<link rel="stylesheet" href="/style.css">
<script src="/app.js" defer></script>
</head><body>
<img id="pixel" src="/pixel.png" alt="">
</body></html>
"""

STYLE_CSS = """html, body { margin: 0; padding: 0; height: 100%%; background: rgb(%d, %d, %d); }
#pixel { position: absolute; left: 400px; top: 300px; width: 160px; height: 80px; image-rendering: pixelated; }
""" % CSS_BACKGROUND

APP_JS = """document.title = "%s";
var block = document.createElement("div");
block.id = "from-js";
block.style.cssText = "position:absolute;left:40px;top:300px;width:200px;height:120px;background:rgb(%d,%d,%d)";
document.body.appendChild(block);
var img = document.getElementById("pixel");
function mark() { document.body.setAttribute("data-pixel", img.naturalWidth + "x" + img.naturalHeight); }
if (img.complete && img.naturalWidth) { mark(); } else { img.addEventListener("load", mark); }
""" % (JS_TITLE, *JS_BLOCK)

ASSETS = ["/", "/style.css", "/app.js", "/pixel.png"]

# combined format: addr - - [time] "METHOD TARGET VERSION" STATUS BYTES "REFERER" "USER-AGENT"
ACCESS_LINE = re.compile(r'^\S+ - - \[[^\]]+\] "(\S+) (\S+) HTTP/1\.[01]" (\d{3}) \d+ "[^"]*" "([^"]*)"$')


# ---- PNG -------------------------------------------------------------------------

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(width, height, pixel):
    """An 8-bit RGB PNG; pixel(x, y) -> (r, g, b). Filter 0 on every row."""
    rows = b"".join(b"\0" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
            png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b""))


def decode_png(data):
    """(width, height, channels, rows) of an 8-bit, non-interlaced RGB or
    RGBA PNG; rows are bytearrays of width * channels bytes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0], kind
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    width, height, depth, color_type, _, _, interlace = header
    assert depth == 8 and interlace == 0 and color_type in (2, 6), header
    channels = 3 if color_type == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 1:      # Sub
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:    # Up
            for i in range(stride):
                line[i] = (line[i] + previous[i]) & 0xFF
        elif kind == 3:    # Average
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:    # Paeth
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b = previous[i]
                c = previous[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        else:
            assert kind == 0, f"PNG filter type {kind}"
        rows.append(line)
        previous = line
    return width, height, channels, rows


def count_colour(decoded, colour, tolerance=3):
    """How many pixels are within `tolerance` of colour on each channel."""
    width, height, channels, rows = decoded
    r0, g0, b0 = colour
    count = 0
    for line in rows:
        for i in range(0, width * channels, channels):
            if abs(line[i] - r0) <= tolerance and abs(line[i + 1] - g0) <= tolerance and \
                    abs(line[i + 2] - b0) <= tolerance:
                count += 1
    return count


def pixel_at(decoded, x, y):
    width, height, channels, rows = decoded
    return tuple(rows[y][x * channels:x * channels + 3])


def test_static_browser_png_codec_round_trip():
    # the decoder that judges the screenshot, checked on a known image first
    # (every filter type, through a file zlib compressed with each filter)
    data = encode_png(5, 4, lambda x, y: (x * 50, y * 60, 7))
    width, height, channels, rows = decode_png(data)
    assert (width, height, channels) == (5, 4, 3)
    assert pixel_at((width, height, channels, rows), 4, 3) == (200, 180, 7)
    raw = bytearray()
    truth = [[(x * 40 + y, (x * y * 13) & 0xFF, 255 - x * 30) for x in range(6)] for y in range(5)]
    previous = bytes(18)
    for y, filter_type in zip(range(5), [0, 1, 2, 3, 4]):
        line = bytes(v for px in truth[y] for v in px)
        out = bytearray(18)
        for i in range(18):
            a = line[i - 3] if i >= 3 else 0
            b = previous[i]
            c = previous[i - 3] if i >= 3 else 0
            predictor = [0, a, b, (a + b) >> 1][filter_type] if filter_type < 4 else (
                a if abs(b - c) <= abs(a - c) and abs(b - c) <= abs(a + b - 2 * c)
                else b if abs(a - c) <= abs(a + b - 2 * c) else c)
            out[i] = (line[i] - predictor) & 0xFF
        raw += bytes([filter_type]) + out
        previous = line
    png = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 6, 5, 8, 2, 0, 0, 0)) +
           png_chunk(b"IDAT", zlib.compress(bytes(raw))) + png_chunk(b"IEND", b""))
    decoded = decode_png(png)
    assert [[pixel_at(decoded, x, y) for x in range(6)] for y in range(5)] == truth


# ---- the browser -----------------------------------------------------------------

def run_chromium(binary, profile, *args):
    """Runs headless Chromium to completion (its own process group, killed
    whole on timeout); returns the CompletedProcess."""
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--no-default-browser-check", "--disable-extensions", "--disable-dev-shm-usage",
               "--hide-scrollbars", "--force-device-scale-factor=1", f"--user-data-dir={profile}", *args]
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=CHROMIUM_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"chromium did not finish in {CHROMIUM_TIMEOUT} s:\n"
                             f"{err.decode(errors='replace')[-3000:]}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


@pytest.fixture
def chromium():
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("headless Chromium is not installed (Debian package 'chromium'); CI installs it")
    return binary


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text(INDEX_HTML)
    (root / "style.css").write_text(STYLE_CSS)
    (root / "app.js").write_text(APP_JS)
    half = IMAGE_SIZE[0] // 2
    (root / "pixel.png").write_bytes(
        encode_png(*IMAGE_SIZE, lambda x, y: IMAGE_LEFT if x < half else IMAGE_RIGHT))
    return root


def test_static_browser_renders_page_with_css_js_and_image(chromium, site, tmp_path, serve_files):
    access_log = tmp_path / "access.log"
    server = serve_files(site, "--access-log", str(access_log))
    profile = tmp_path / "profile"
    screenshot = tmp_path / "page.png"

    shot = run_chromium(chromium, profile, f"--screenshot={screenshot}", "--window-size=800,600",
                        "--virtual-time-budget=2000", f"{server.url}/")
    assert shot.returncode == 0, shot.stderr.decode(errors="replace")[-3000:]
    dom = run_chromium(chromium, profile, "--dump-dom", "--virtual-time-budget=2000", f"{server.url}/")
    assert dom.returncode == 0, dom.stderr.decode(errors="replace")[-3000:]

    # the script ran, after the image had been decoded
    html = dom.stdout.decode("utf-8", "replace")
    assert f"<title>{JS_TITLE}</title>" in html, html
    assert 'id="from-js"' in html, html
    assert f'data-pixel="{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}"' in html, html

    # what the screen shows: the stylesheet's background, the script's block, the image
    assert screenshot.exists(), shot.stderr.decode(errors="replace")[-3000:]
    decoded = decode_png(screenshot.read_bytes())
    width, height, _, _ = decoded
    assert (width, height) == (800, 600)
    assert pixel_at(decoded, 5, 5) == CSS_BACKGROUND
    assert count_colour(decoded, CSS_BACKGROUND) > width * height // 2
    assert count_colour(decoded, JS_BLOCK) > 150 * 100   # 200x120 block
    assert pixel_at(decoded, 140, 360) == JS_BLOCK
    assert count_colour(decoded, IMAGE_LEFT) > 60 * 60    # each half is 80x80 on screen
    assert count_colour(decoded, IMAGE_RIGHT) > 60 * 60
    assert pixel_at(decoded, 440, 340) == IMAGE_LEFT
    assert pixel_at(decoded, 520, 340) == IMAGE_RIGHT

    # stopping flushes the access log; then every asset must be there, answered
    assert server.stop() == 0, server.stderr_text()
    requests = []
    for line in access_log.read_text().splitlines():
        match = ACCESS_LINE.match(line)
        assert match, f"not a combined access log line: {line!r}"
        requests.append(match.groups())
    for asset in ASSETS:
        got = [(status, agent) for method, target, status, agent in requests if target == asset]
        assert got, f"the browser never asked for {asset}: {requests}"
        assert all(status in ("200", "304") for status, _ in got), (asset, got)
        assert all("Chrome" in agent for _, agent in got), (asset, got)
    strays = [r for r in requests if r[1] not in ASSETS and r[1] != "/favicon.ico"]
    assert not strays, strays
