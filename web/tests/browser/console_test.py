#!/usr/bin/env python3
"""The console in a real browser: headless Chromium driven by Selenium against a live cluster.

Starts `tradenet up` on free ports (100 ms heartbeats), opens the console URL it prints (the
secret rides in the URL's fragment), and checks that the page shows three replicas and a
leader; starts a short load from the page and waits for the traffic strip and the cache to show
it; clicks Kill on the leader and waits for the page to show a new leader; clicks Start on the
old leader and waits for it to lead again (highest live id). The timeline must show the kill
and the elections. Saves a screenshot, during a second load, of the console (to $CONSOLE_SCREENSHOT, default a
temporary file; `docs/console.png` is one).

Run: TRADENET_BIN=target/debug/tradenet /usr/bin/python3 web/tests/browser/console_test.py
Needs Debian's chromium, chromium-driver and python3-selenium (.ci/run installs them).
Exits non-zero, with the reason, when anything is not as it should be.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

HEARTBEAT_MS = 100
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(folder):
    addr = lambda: f"127.0.0.1:{free_port()}"  # noqa: E731
    text = f"""data_dir = "{folder}/data"
log = "info"

[catalog]
addr = "{addr()}"

[frontend]
addr = "{addr()}"
heartbeat_ms = {HEARTBEAT_MS}
cache_size = 4

[launcher]
control_addr = "{addr()}"
"""
    for i in (1, 2, 3):
        text += f'\n[[replicas]]\nid = {i}\naddr = "{addr()}"\n'
    path = os.path.join(folder, "tradenet.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def start_up(binary, config, folder):
    log = open(os.path.join(folder, "up.log"), "w")
    up = subprocess.Popen([binary, "--config", config, "up"], stdout=subprocess.PIPE,
                          stderr=log, text=True)
    deadline = time.time() + 60
    url = None
    while time.time() < deadline:
        line = up.stdout.readline()
        if not line:
            break
        m = re.search(r"console\s+(\S+)", line)
        if m:
            url = m.group(1)
        if "Ctrl-C stops everything" in line:
            break
    if not url:
        up.kill()
        raise SystemExit(f"`tradenet up` printed no console URL within 60 s (see {folder}/up.log)")
    return up, url


def browser(folder):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1400,1000",
                 f"--user-data-dir={folder}/chromium"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def leader(driver):
    rows = driver.find_elements(By.CSS_SELECTOR, "#processes tbody tr.leader")
    return rows[0].get_attribute("data-name") if len(rows) == 1 else None


def wait(driver, what, seconds, check):
    try:
        return WebDriverWait(driver, seconds, poll_frequency=0.05).until(lambda d: check(d))
    except Exception:
        rows = [(r.get_attribute("data-name"), r.get_attribute("class"), r.text.replace("\n", " "))
                for r in driver.find_elements(By.CSS_SELECTOR, "#processes tbody tr")]
        conn = driver.find_element(By.ID, "conn").text
        raise SystemExit(f"the console did not show {what} within {seconds} s; "
                         f"it shows ({conn}): {rows}")


def click(driver, css):
    """Clicks the element `css` names (the page updates its rows in place, so the element
    found is the one clicked)."""
    wait(driver, css, 5, lambda d: d.find_element(By.CSS_SELECTOR, css).is_displayed())
    driver.find_element(By.CSS_SELECTOR, css).click()


def main():
    binary = os.environ.get("TRADENET_BIN", os.path.join(ROOT, "target/debug/tradenet"))
    folder = tempfile.mkdtemp(prefix="tradenet-console-")
    up, url = start_up(binary, write_config(folder), folder)
    driver = None
    try:
        driver = browser(folder)
        driver.get(url)
        wait(driver, "three replicas and a leader", 20, lambda d: len(
            d.find_elements(By.CSS_SELECTOR, "#processes tbody tr[data-name^='order-']")) == 3
            and leader(d))
        first = leader(driver)
        if first != "order-3":
            raise SystemExit(f"the highest id leads, but the page shows {first}")
        shown = driver.find_element(By.ID, "leader").get_attribute("textContent")
        if shown != first:
            raise SystemExit(f"the header names {shown!r} as leader, the table {first}")
        print(f"console: 5 processes, leader {first}")

        seconds = driver.find_element(By.CSS_SELECTOR, "#load input[name='seconds']")
        seconds.clear()
        seconds.send_keys("2")
        click(driver, "#load-start")
        wait(driver, "the load in the cache", 15, lambda d: len(
            d.find_elements(By.CSS_SELECTOR, "#cache-entries .chip")) >= 2)
        wait(driver, "a rate in the traffic strip", 15, lambda d: any(
            s.text not in ("-", "0") for s in d.find_elements(
                By.CSS_SELECTOR, "#strips .strip[data-kind='lookups'] .num")))

        click(driver, f"button[data-kill='{first}']")
        killed = time.time()
        new = wait(driver, "a new leader after the kill", 10,
                   lambda d: (leader(d) not in (None, first)) and leader(d))
        took = time.time() - killed
        print(f"console: killed {first}; the page shows {new} leading "
              f"{took * 1000:.0f} ms later ({took * 1000 / HEARTBEAT_MS:.1f} heartbeats)")
        kinds = lambda d: [li.get_attribute("data-kind") for li in  # noqa: E731
                           d.find_elements(By.CSS_SELECTOR, "#events li")]
        wait(driver, "the kill and the election in the timeline", 5,
             lambda d: "kill" in kinds(d) and "election" in kinds(d))

        click(driver, f"button[data-start='{first}']")
        wait(driver, f"{first} leading again once it is back", 30, lambda d: leader(d) == first)
        # A second load, so the picture shows traffic, the cache and the timeline at once.
        wait(driver, "the first load's end", 10, lambda d: "load done" in open(
            os.path.join(folder, "up.log")).read())
        click(driver, "#load-start")
        time.sleep(1.5)
        shot = os.environ.get("CONSOLE_SCREENSHOT", os.path.join(folder, "console.png"))
        driver.save_screenshot(shot)
        print(f"console: screenshot in {shot}")
        if "error" in kinds(driver):
            raise SystemExit("the timeline shows an error: " + driver.find_element(
                By.CSS_SELECTOR, "#events li[data-kind='error']").text)
        print(f"console: {first} restarted from the page and leads again; timeline: "
              f"{len(kinds(driver))} events ({', '.join(sorted(set(kinds(driver))))})")
    finally:
        if driver is not None:
            driver.quit()
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=15)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
    print("console test: ok")


if __name__ == "__main__":
    sys.exit(main())
