"""A real headless Chromium (Debian's ``chromium`` and its ``chromium-driver``) driven by selenium,
and a ``Console`` that speaks of the web console's pages the way a person uses them."""
from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DESKTOP = (1280, 800)
PHONE = (390, 844)
WAIT_SECONDS = 30
STALE = (StaleElementReferenceException,)  # the app re-rendered what was found: look again


def require_chromium() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        message = f"{' and '.join(missing)} missing: apt-get install chromium chromium-driver (scripts/install-deps --tests)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(f"!!! SKIPPING the console's browser tests: {message} !!!")


@contextlib.contextmanager
def chromium(size: tuple[int, int] = DESKTOP) -> Iterator[webdriver.Chrome]:
    """A fresh headless browser profile; the clipboard may be read and written (copy buttons)."""
    require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", "--hide-scrollbars", f"--window-size={size[0]},{size[1]}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.set_window_size(*size)
        yield driver
    finally:
        driver.quit()


class Console:
    """The console at ``url`` in ``driver``; waits are for what a person would wait to see."""

    def __init__(self, driver: webdriver.Chrome, url: str, shots: Path):
        self.driver, self.url, self.shots = driver, url.rstrip("/"), shots

    # -- getting around ---------------------------------------------------------------------
    def open(self, route: str = "") -> Console:
        self.driver.get(f"{self.url}/ui/{'#/' + route if route else ''}")
        return self

    def go(self, route: str) -> Console:
        self.driver.execute_script("location.hash = arguments[0]", "#/" + route)
        return self

    def sign_in_with_token(self, token: str) -> Console:
        field = self.wait_for("#token")
        field.send_keys(token)
        self.click("button[type=submit]")
        self.wait_for("header.top nav")
        return self

    def sign_out(self) -> None:
        self.button("Sign out").click()
        self.wait_for("#token")

    # -- finding ----------------------------------------------------------------------------
    def wait_for(self, css: str, *, text: str | None = None, timeout: float = WAIT_SECONDS) -> WebElement:
        """The first element matching ``css`` that is shown (and contains ``text``)."""
        def found(driver):
            for element in driver.find_elements(By.CSS_SELECTOR, css):
                if element.is_displayed() and (text is None or text in element.text):
                    return element
            return False
        try:
            return WebDriverWait(self.driver, timeout, ignored_exceptions=STALE).until(found)
        except TimeoutException:
            raise AssertionError(f"nothing matching {css!r}{f' with {text!r}' if text else ''} appeared in "
                                 f"{timeout} s; the page says:\n{self.text()[:2000]}") from None

    def wait_until(self, condition, message: str, timeout: float = WAIT_SECONDS):
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05, ignored_exceptions=STALE).until(
                lambda _: condition())
        except TimeoutException:
            raise AssertionError(f"{message} within {timeout} s; the page says:\n{self.text()[:2000]}") from None

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def button(self, label: str, within: WebElement | None = None) -> WebElement:
        scope = within or self.driver
        return WebDriverWait(self.driver, WAIT_SECONDS, ignored_exceptions=STALE).until(lambda _: next(
            (b for b in scope.find_elements(By.TAG_NAME, "button") if b.is_displayed() and b.text.strip() == label), False))

    def click(self, css: str) -> None:
        WebDriverWait(self.driver, WAIT_SECONDS).until(ec.element_to_be_clickable((By.CSS_SELECTOR, css))).click()

    def text(self) -> str:
        return self.driver.execute_script("return document.body.innerText")

    def focused(self) -> str:
        """The text (or id) of what has the keyboard focus."""
        return self.driver.execute_script("const e = document.activeElement; return e.id || e.textContent.trim()")

    def press(self, *keys: str) -> None:
        """Keys typed into whatever has the focus, as a person at the keyboard does."""
        from selenium.webdriver.common.action_chains import ActionChains
        ActionChains(self.driver).send_keys(*keys).perform()

    def heading(self) -> str:
        return self.driver.execute_script("const h = document.querySelector('main h1'); return h ? h.innerText : ''")

    # -- evidence ---------------------------------------------------------------------------
    def screenshot(self, name: str) -> Path:
        """A PNG of the whole page (as tall as its content) in ``shots``."""
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{name}.png"
        width = self.driver.get_window_size()["width"]
        height = self.driver.execute_script("return Math.max(document.body.scrollHeight, window.innerHeight)")
        original = self.driver.get_window_size()
        self.driver.execute_script("window.scrollTo(0, 0)")
        self.driver.set_window_size(width, min(int(height) + 120, 4000))
        try:
            self.driver.save_screenshot(str(path))
        finally:
            self.driver.set_window_size(original["width"], original["height"])
        return path

    def clipboard(self) -> str:
        """What the page copied (the browser grants this page the clipboard)."""
        self.grant_clipboard()
        return self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1]; navigator.clipboard.readText().then(done, e => done('ERROR ' + e))")

    def grant_clipboard(self) -> None:
        self.driver.execute_cdp_cmd("Browser.grantPermissions", {
            "origin": self.url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})

    def console_errors(self) -> list[str]:
        """The browser console's errors (a CSP violation, an exception in the app)."""
        return [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]
