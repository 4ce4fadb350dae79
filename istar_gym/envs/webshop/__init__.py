"""WebShop (Yao et al. 2022), offline and Java-free.

- `WebShopEnv` (``istar/WebShop-v0``): the text env; `WebShopBrowserEnv` (``istar/WebShopBrowser-v0``,
  in `istar_gym.envs.webshop.browser`, needs selenium and Chromium) plays the same pages in a browser.
- `server`: the web app for people and browser agents (``python -m istar_gym.envs.webshop.server``).
- `RuleAgent` (the paper's rule baseline) and `OracleAgent` (knows the goal) are scripted policies.
- Modules, in data-flow order: `vocabulary` -> `catalog` -> `goals` -> `search` -> `shop` -> `reward`
  -> `site` (pages and their text) -> `env`; `official` loads the original's JSON files.
"""

from istar_gym.envs.webshop.baselines import OracleAgent, RuleAgent
from istar_gym.envs.webshop.env import WebShopEnv

__all__ = ["OracleAgent", "RuleAgent", "WebShopEnv"]
