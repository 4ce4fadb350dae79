"""`istar/WebShopBrowser-v0`: WebShop played in a real headless Chromium through the web app."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as error:  # selenium is the optional `browser` extra
    raise ImportError("istar/WebShopBrowser-v0 needs selenium: pip install 'istar-gym[browser]'") from error

from istar_gym.envs._inputs import EpisodeNotRunning
from istar_gym.envs.webshop.env import MAX_ACTION_LENGTH, MAX_OBSERVATION_LENGTH, action_problem, choose_goal, load_tasks
from istar_gym.envs.webshop.goals import Goal
from istar_gym.envs.webshop.server import ServerThread, create_app
from istar_gym.envs.webshop.site import (
    available_actions,
    clickables,
    html_segments,
    invalid_feedback,
    parse_action,
    render_text,
    render_text_rich,
)
from istar_gym.spaces import Text

__all__ = ["CHROMIUM_FLAGS", "WebShopBrowserEnv"]

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)
_PAGE_TIMEOUT_S = 20


class WebShopBrowserEnv(gym.Env):
    """`WebShopEnv` played by a browser: the same actions, observations and rewards, through real pages.

    The env serves the web app (`istar_gym.envs.webshop.server`) on a free port of 127.0.0.1 in a
    background thread, or uses ``server_url`` if given, and drives headless Chromium with Selenium
    (Debian ``chromium`` + ``chromium-driver``; found on ``PATH`` or via ``chromium_path`` /
    ``chromedriver_path``; nothing is downloaded).

    **Actions** parse exactly as in `WebShopEnv`. ``search[q]`` types ``q`` into the search box and
    submits it (from another page the env first opens the search page, so search works anywhere as in
    the text env); ``click[x]`` clicks the button, product link or option radio whose text or value
    is ``x``. Invalid actions change nothing and cost ``invalid_penalty``.

    **Observation**: ``text`` / ``text_rich`` are read back from the browser's DOM, so they equal the
    text env's observations; ``html`` is the browser's page source; ``url`` is the real URL (with this
    server's port).

    **Reward**: 0, except on ``click[buy now]``, where it is read from the done page's
    ``#reward pre`` (computed by the same reward function as the text env). ``terminated`` on buying,
    after which ``step()`` raises `EpisodeNotRunning` until ``reset()``, as in every ``istar/...`` env;
    ``truncated`` by ``TimeLimit`` (15 steps by default).

    **Info**: ``action_is_valid``, ``success``, ``instruction``, ``available_actions``, ``page``,
    ``goal_index``, ``feedback``, as in `WebShopEnv`.

    **Goals**: ``reset(options={"goal_index": i})`` pins goal ``i``; otherwise one of the split is drawn
    by ``goal_sampling`` (``"weighted"`` by attribute weight, or ``"uniform"``), as in `WebShopEnv`.

    Example:
        >>> env = gym.make("istar/WebShopBrowser-v0")  # needs chromium and chromedriver
        >>> obs, info = env.reset(seed=0, options={"goal_index": 3})
        >>> env.close()  # quits the browser and stops the server
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        num_products: int = 1000,
        seed: int = 0,
        split: str = "test",
        observation_mode: str = "text",
        data_dir: str | Path | None = None,
        invalid_penalty: float = 0.0,
        goal_sampling: str = "weighted",
        server_url: str | None = None,
        chromium_path: str | None = None,
        chromedriver_path: str | None = None,
        render_mode: str | None = None,
    ):
        self.observation_mode = observation_mode
        self.invalid_penalty = float(invalid_penalty)
        self.render_mode = render_mode
        self.shop, self._sampler = load_tasks(num_products, seed, data_dir, split, observation_mode, goal_sampling)
        self._chromium = chromium_path or _which("chromium", "chromium-browser", "google-chrome")
        self._chromedriver = chromedriver_path or _which("chromedriver")
        self._server = None if server_url else ServerThread(create_app(num_products, seed, data_dir, split))
        self.server_url = (server_url or self._server.url).rstrip("/")
        self.action_space = Text(max_length=MAX_ACTION_LENGTH)
        self.observation_space = Text(max_length=MAX_OBSERVATION_LENGTH)
        self.goal_index: int | None = None
        self._driver = None
        self._profile: tempfile.TemporaryDirectory | None = None
        self._visited: set[str] = set()
        self._done = False

    @property
    def goal(self) -> Goal:
        """The current goal (for scripted oracles)."""
        if self.goal_index is None:
            raise RuntimeError("WebShopBrowserEnv.goal: call reset() first")
        return self.shop.goals[self.goal_index]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.goal_index = choose_goal(options, self.shop, self._sampler, self.np_random, type(self).__name__)
        self._visited = set()
        self._done = False
        self._open(f"/fixed_{self.goal_index}")
        return self._observe(valid=True, feedback="")

    def step(self, action: str):
        if self.goal_index is None:
            raise EpisodeNotRunning("WebShopBrowserEnv.step(): call reset() before step()")
        if self._done:
            raise EpisodeNotRunning("WebShopBrowserEnv.step(): the purchase is done and the episode is over; call reset()")
        problem = action_problem(action, self.action_space.max_length, self._page())
        if problem:
            observation, info = self._observe(False, problem)
            return observation, self.invalid_penalty, False, False, info
        name, argument = parse_action(action)
        segments = html_segments(self._driver.page_source)
        if name == "search" and argument:
            self._search(argument)
        elif name == "click" and argument and argument != "search" and argument in clickables(segments):
            self._click(argument, segments)
        else:
            observation, info = self._observe(False, invalid_feedback(self._page(), action))
            return observation, self.invalid_penalty, False, False, info
        observation, info = self._observe(True, "")
        reward = 0.0
        if info["page"] == "done":
            reward = float(self._driver.find_element(By.CSS_SELECTOR, "#reward pre").get_attribute("textContent"))
            self._done = True
            info["success"] = reward == 1.0
        return observation, reward, self._done, False, info

    def render(self):
        if self.render_mode == "ansi" and self._driver is not None:
            return render_text(html_segments(self._driver.page_source))
        return None

    def close(self):
        if self._driver is not None:
            self._driver.quit()
            self._driver = None
        if self._profile is not None:
            self._profile.cleanup()
            self._profile = None
        if self._server is not None:
            self._server.stop()
            self._server = None

    # -----------------------------------------------------------------------------------------------

    def _browser(self):
        if self._driver is None:
            if not self._chromium or not self._chromedriver:
                raise RuntimeError(
                    f"WebShopBrowserEnv needs Chromium and chromedriver (found chromium={self._chromium!r}, "
                    f"chromedriver={self._chromedriver!r}); install Debian's `chromium chromium-driver` or pass "
                    "chromium_path= and chromedriver_path="
                )
            self._profile = tempfile.TemporaryDirectory(prefix="webshop-chromium-")
            options = webdriver.ChromeOptions()
            options.binary_location = self._chromium
            for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={self._profile.name}"):
                options.add_argument(flag)
            self._driver = webdriver.Chrome(options=options, service=Service(executable_path=self._chromedriver))
            self._driver.set_page_load_timeout(_PAGE_TIMEOUT_S)
        return self._driver

    def _open(self, path: str) -> None:
        self._browser().get(self.server_url + path)

    def _search(self, query: str) -> None:
        if self._page() != "search":
            self._open(f"/fixed_{self.goal_index}")
        box = self._driver.find_element(By.ID, "search_input")
        box.send_keys(query)
        self._navigate(lambda: self._driver.find_element(By.CSS_SELECTOR, "#search-form button").click())

    def _click(self, name: str, segments) -> None:
        kinds = {(s.text if s.kind == "option" else s.text.lower()): s.kind for s in segments}
        if kinds[name] == "option":
            radios = [r for r in self._driver.find_elements(By.CSS_SELECTOR, "input[type=radio]") if r.get_attribute("value") == name]
            # Radios are visually hidden, as in the original, so they are clicked from script.
            self._navigate(lambda: self._driver.execute_script("arguments[0].click();", radios[-1]))
            return
        selector = ".product-link" if kinds[name] == "product" else ".btn"
        element = next(e for e in self._driver.find_elements(By.CSS_SELECTOR, selector) if e.get_attribute("textContent").strip().lower() == name)
        if kinds[name] == "product":
            self._visited.add(name.upper())
        self._navigate(element.click)

    def _navigate(self, act) -> None:
        """Run ``act`` and wait until the page it leads to has loaded.

        The old page is marked on its ``window``; a new document comes with a fresh ``window``, so the
        mark's absence proves the navigation happened. While the documents swap, Chromium may answer
        a probe with an error (e.g. "Node with given id does not belong to the document") instead of
        a stale-element one, so any WebDriver error while waiting means "not yet"; a page that never
        comes still ends in a `TimeoutException` after ``_PAGE_TIMEOUT_S``.
        """
        self._driver.execute_script("window.__istarLeftPage = true;")
        act()
        WebDriverWait(self._driver, _PAGE_TIMEOUT_S, ignored_exceptions=(WebDriverException,)).until(
            lambda driver: driver.execute_script("return !window.__istarLeftPage && document.readyState === 'complete';"),
            message=f"the browser did not load the next page within {_PAGE_TIMEOUT_S} s (is Chromium still running?)",
        )

    def _page(self) -> str:
        return self._driver.find_element(By.TAG_NAME, "body").get_attribute("data-page") or ""

    def _observe(self, valid: bool, feedback: str) -> tuple[str, dict]:
        html = self._driver.page_source
        segments = html_segments(html)
        page = self._page()
        if self.observation_mode == "text":
            observation = render_text(segments)
        elif self.observation_mode == "text_rich":
            chosen = {r.get_attribute("value") for r in self._driver.find_elements(By.CSS_SELECTOR, "input[type=radio]:checked")}
            observation = render_text_rich(segments, chosen, self._visited)
        elif self.observation_mode == "html":
            observation = html
        else:
            observation = self._driver.current_url
        if feedback and self.observation_mode in ("text", "text_rich"):
            observation = f"{feedback}\n{observation}"
        info = {
            "action_is_valid": valid,
            "success": False,
            "instruction": self.goal.instruction_text,
            "available_actions": available_actions(segments, page),
            "page": page,
            "goal_index": self.goal_index,
            "feedback": feedback,
        }
        return observation, info


def _which(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None
