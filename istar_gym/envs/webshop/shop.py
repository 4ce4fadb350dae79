"""The shop an env or the web app serves: products, goals and the search index, built once per process.

The original loads the whole catalogue (and a JVM) in every env instance; here `load_shop` caches one
immutable `Shop` per (catalogue, seed, data files), so all envs of a process share it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from istar_gym.envs.webshop.catalog import Product, generate_catalog
from istar_gym.envs.webshop.goals import Goal, SyntheticGoals
from istar_gym.envs.webshop.search import BM25Index, product_document

__all__ = ["RESULTS_PER_PAGE", "SEARCH_RETURN_N", "Shop", "load_shop"]

SEARCH_RETURN_N = 50
RESULTS_PER_PAGE = 10


@dataclass(eq=False)
class Shop:
    """Products, goals and search of one catalogue. Treat as read-only: it is shared."""

    products: Sequence[Product]
    goals: Sequence[Goal]
    index: BM25Index
    key: tuple = ()
    by_asin: dict[str, Product] = field(init=False)
    _search_cache: OrderedDict = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False)

    def __post_init__(self):
        self.by_asin = {product.asin: product for product in self.products}
        self._search_cache = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_products(cls, products: Sequence[Product], goals: Sequence[Goal], key: tuple = ()) -> Shop:
        index = BM25Index([product_document(p) for p in products], [p.asin for p in products])
        return cls(products=products, goals=goals, index=index, key=key)

    def search(self, keywords: Sequence[str]) -> tuple[str, ...]:
        """ASINs of the top 50 products for the keywords, best first (recent queries are cached)."""
        query = " ".join(keywords)
        with self._lock:
            hit = self._search_cache.get(query)
            if hit is not None:
                self._search_cache.move_to_end(query)
                return hit
        asins = tuple(self.products[i].asin for i in self.index.search(query, SEARCH_RETURN_N))
        with self._lock:
            self._search_cache[query] = asins
            if len(self._search_cache) > 256:
                self._search_cache.popitem(last=False)
        return asins


def load_shop(num_products: int = 1000, seed: int = 0, data_dir: str | Path | None = None) -> Shop:
    """The shared `Shop` for a generated catalogue, or for official WebShop files in ``data_dir``."""
    key = (num_products, seed, None if data_dir is None else str(Path(data_dir).resolve()))
    with _SHOPS_LOCK:
        shop = _SHOPS.get(key)
        if shop is None:
            shop = _SHOPS[key] = _build_shop(*key)
    return shop


# ---------------------------------------------------------------------------------------------------

_SHOPS: dict[tuple, Shop] = {}
_SHOPS_LOCK = threading.Lock()


def _build_shop(num_products: int, seed: int, data_dir: str | None) -> Shop:
    key = (num_products, seed, data_dir)
    if data_dir is not None:
        from istar_gym.envs.webshop.official import load_official

        products, goals = load_official(data_dir, num_products=num_products, seed=seed)
        return Shop.from_products(products, goals, key)
    products = generate_catalog(num_products, seed)
    return Shop.from_products(products, SyntheticGoals(products, seed), key)
