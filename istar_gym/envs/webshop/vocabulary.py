"""Word lists the catalogue generator draws from: the 5 WebShop categories and their sub-category queries.

Each `QuerySpec` describes one scrape query of the original data set (e.g. "shampoo"): the Amazon-style
breadcrumb, the product-type noun phrases used in titles, the option kinds its products carry, the
hidden-attribute pool (short phrases like the original's TF-IDF bigrams) and a price range.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AUDIENCES", "BRAND_SYLLABLES", "OPTION_KINDS", "QUERIES", "QuerySpec"]


@dataclass(frozen=True)
class QuerySpec:
    query: str
    category: str
    breadcrumb: str
    types: tuple[str, ...]  # product-type noun phrases; every word is recorded as a title noun
    options: tuple[str, ...]  # keys of OPTION_KINDS, in the order the product page lists them
    attributes: tuple[str, ...]
    price: tuple[float, float]
    audience: str = ""  # key of AUDIENCES, or "" for none


# option kind -> (option name as shown on the page, raw values as a shop would write them)
OPTION_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "color": ("Color", (
        "Black", "White", "Navy Blue", "Light Blue", "Dark Grey", "Heather Grey", "Red", "Wine Red",
        "Burgundy", "Pink", "Rose Gold", "Beige", "Khaki", "Olive Green", "Army Green", "Brown",
        "Coffee", "Purple", "Lavender", "Yellow", "Mustard", "Orange", "Teal", "Turquoise",
        "Black/White", "Grey/Blue", "Multicolor", "Silver", "Gold", "Natural",
    )),
    "apparel_size": ("Size", ("X-Small", "Small", "Medium", "Large", "X-Large", "XX-Large", "3X-Large")),
    "shoe_size": ("Size", ("6", "6.5", "7", "7.5", "8", "8.5", "9", "9.5", "10", "10.5", "11", "12", "13")),
    "volume": ("Size", (
        "1 Fl Oz (Pack of 1)", "2 Fl Oz", "3.4 Fl Oz", "6.76 Fl Oz (Pack of 1)", "8 Fl Oz", "12 Fl Oz",
        "16.9 Fl Oz (Pack of 2)", "33.8 Fl Oz",
    )),
    "weight": ("Size", (
        "4 Ounce (Pack of 1)", "8 Ounce", "12 Ounce (Pack of 2)", "16 Ounce", "1 Pound (Pack of 1)",
        "2 Pound", "5 Pound Bag", "24 Count (Pack of 4)",
    )),
    "pack": ("Item Package Quantity", ("1", "2", "3", "4", "6", "12")),
    "flavor": ("Flavor Name", (
        "Original", "Vanilla", "Chocolate", "Strawberry", "Sea Salt", "Honey Roasted", "Barbecue",
        "Cinnamon", "Peanut Butter", "Lemon", "Mint", "Variety Pack", "Dark Chocolate", "Cheddar",
    )),
    "scent": ("Scent", (
        "Lavender", "Unscented", "Coconut", "Eucalyptus Mint", "Rose", "Citrus", "Vanilla Musk",
        "Tea Tree", "Fresh Linen", "Ocean Breeze",
    )),
    "capacity": ("Capacity", ("32GB", "64GB", "128GB", "256GB", "512GB", "1TB")),
    "style": ("Style", (
        "Classic", "Modern", "Vintage", "Compact", "Deluxe", "Pro", "Regular", "Plus", "Mini", "Max",
    )),
    "bed_size": ("Size", ("Twin", "Twin XL", "Full", "Queen", "King", "California King")),
    "panel_size": ("Size", ("42 x 63 Inch", "52 x 63 Inch", "52 x 84 Inch", "52 x 95 Inch", "2 Panels")),
    "hose_length": ("Size", ("25 Feet", "50 Feet", "75 Feet", "100 Feet")),
    "table_size": ("Size", ("24 x 36 Inch", "30 x 48 Inch", "36 Inch", "48 Inch", "60 Inch")),
    "material": ("Material Type", ("Wood", "Metal", "Plastic", "Bamboo", "Glass", "Stainless Steel")),
    "cable_length": ("Size", ("3 Feet", "6 Feet", "10 Feet", "1 Meter", "2 Meter (2 Pack)")),
}

AUDIENCES: dict[str, tuple[str, ...]] = {
    "people": ("women", "men", "kids", "adults", "teens"),
    "women": ("women", "girls", "ladies"),
    "men": ("men", "boys", "guys"),
    "hair": ("dry hair", "curly hair", "thin hair", "damaged hair", "oily hair"),
    "skin": ("dry skin", "sensitive skin", "oily skin", "face", "body"),
    "home": ("living room", "bedroom", "kitchen", "office", "bathroom", "patio"),
    "device": ("iphone", "laptop", "tablet", "tv", "car", "computer"),
    "pet": ("dogs", "cats", "puppies"),
}

# Brand names are built from two of these, so titles carry proper nouns the way real listings do.
BRAND_SYLLABLES = (
    "lu", "vo", "ra", "ken", "drix", "mo", "zen", "ta", "bel", "qui", "nor", "vex", "sol", "ari", "ko",
    "pel", "dan", "tri", "xo", "fin", "gar", "ho", "ly", "mar", "nix", "ob", "pra", "sen", "tur", "vi",
)

_B = "Beauty & Personal Care"
_E = "Electronics"
_F = "Clothing, Shoes & Jewelry"
_G = "Home & Kitchen"
_Q = "Grocery & Gourmet Food"

QUERIES: tuple[QuerySpec, ...] = (
    # beauty
    QuerySpec("shampoo", "beauty", f"{_B} › Hair Care › Shampoo & Conditioner › Shampoos",
              ("shampoo", "hair shampoo", "shampoo conditioner set"), ("volume", "scent"),
              ("paraben free", "sulfate free", "natural ingredients", "tea tree", "argan oil", "hair growth",
               "dry hair", "cruelty free", "long lasting", "color safe", "hair loss", "essential oils"),
              (6.0, 45.0), "hair"),
    QuerySpec("deodorant", "beauty", f"{_B} › Personal Care › Deodorants & Antiperspirants › Deodorants",
              ("deodorant", "deodorant stick", "antiperspirant deodorant"), ("scent", "pack"),
              ("aluminum free", "long lasting", "natural ingredients", "sensitive skin", "travel size",
               "baking soda", "cruelty free", "paraben free", "fresh scent"), (4.0, 25.0), "people"),
    QuerySpec("lipstick", "beauty", f"{_B} › Makeup › Lips › Lipstick",
              ("lipstick", "matte lipstick", "lip gloss set"), ("color", "pack"),
              ("long lasting", "high pigmented", "cruelty free", "waterproof", "easy apply", "natural ingredients",
               "vegan", "moisturizing"), (5.0, 30.0), "women"),
    QuerySpec("face moisturizer", "beauty", f"{_B} › Skin Care › Face › Creams & Moisturizers › Face Moisturizers",
              ("face moisturizer", "moisturizer cream", "face cream"), ("volume", "scent"),
              ("hyaluronic acid", "fine lines", "dry skin", "sensitive skin", "fragrance free", "anti aging",
               "natural ingredients", "non greasy", "spf 30", "vitamin c"), (9.0, 60.0), "skin"),
    QuerySpec("nail polish", "beauty", f"{_B} › Foot, Hand & Nail Care › Nail Art & Polish › Nail Polish",
              ("nail polish", "gel nail polish", "nail polish kit"), ("color", "pack"),
              ("long lasting", "quick dry", "non toxic", "high gloss", "easy apply", "nail art", "uv led",
               "chip resistant"), (5.0, 35.0), "women"),
    QuerySpec("hair dryer", "beauty", f"{_B} › Hair Care › Styling Tools & Appliances › Hair Dryers",
              ("hair dryer", "blow dryer", "ionic hair dryer"), ("color", "style"),
              ("fast drying", "low noise", "ionic technology", "travel size", "cool shot", "lightweight design",
               "negative ions", "hair salon"), (19.0, 120.0), "hair"),
    QuerySpec("makeup brush", "beauty", f"{_B} › Tools & Accessories › Makeup Brushes & Tools › Brush Sets",
              ("makeup brush set", "makeup brushes", "foundation brush"), ("color", "style"),
              ("synthetic hair", "easy clean", "cruelty free", "travel case", "soft bristles", "eye shadow",
               "high quality"), (7.0, 40.0), ""),
    QuerySpec("bath bomb", "beauty", f"{_B} › Bath & Body › Bath › Bath Bombs",
              ("bath bombs", "bath bomb gift set", "bath salts"), ("scent", "pack"),
              ("natural ingredients", "essential oils", "dry skin", "gift set", "shea butter", "handmade",
               "organic", "relaxation"), (8.0, 35.0), "people"),
    # electronics
    QuerySpec("headphones", "electronics", f"{_E} › Headphones, Earbuds & Accessories › Headphones › Over-Ear Headphones",
              ("headphones", "wireless headphones", "earbuds"), ("color", "style"),
              ("noise cancelling", "bluetooth 5.0", "long battery life", "hands free", "high fidelity",
               "carrying case", "fast charging", "built in microphone"), (15.0, 250.0), ""),
    QuerySpec("phone case", "electronics", f"{_E} › Cell Phones & Accessories › Cases, Holsters & Sleeves › Basic Cases",
              ("phone case", "protective case", "wallet case"), ("color", "style"),
              ("shock absorbing", "wireless charging", "slim fit", "drop protection", "card holder",
               "tempered glass", "heavy duty", "easy install"), (5.0, 30.0), "device"),
    QuerySpec("usb cable", "electronics", f"{_E} › Computers & Accessories › Cables & Accessories › USB Cables",
              ("usb cable", "charging cable", "usb c cable"), ("cable_length", "color"),
              ("fast charging", "high speed", "nylon braided", "data transfer", "usb c", "durable design",
               "gold plated"), (5.0, 25.0), "device"),
    QuerySpec("tv mount", "electronics", f"{_E} › Television & Video › Accessories › TV Mounts, Stands & Turntables",
              ("tv wall mount", "tv mount", "tv stand"), ("style", "pack"),
              ("heavy duty", "easy install", "tilt swivel", "full motion", "wall mount", "cable management",
               "steel frame"), (18.0, 150.0), ""),
    QuerySpec("bluetooth speaker", "electronics", f"{_E} › Portable Audio & Video › Portable Speakers & Docks › Portable Bluetooth Speakers",
              ("bluetooth speaker", "portable speaker", "speaker"), ("color", "style"),
              ("waterproof", "bluetooth 5.0", "long battery life", "stereo sound", "portable design",
               "hands free", "deep bass", "outdoor use"), (15.0, 180.0), ""),
    QuerySpec("memory card", "electronics", f"{_E} › Computers & Accessories › Memory Cards › Micro SD Cards",
              ("micro sd card", "memory card", "sd card"), ("capacity", "pack"),
              ("high speed", "full hd", "data transfer", "adapter included", "class 10", "water resistant"),
              (6.0, 90.0), "device"),
    QuerySpec("security camera", "electronics", f"{_E} › Camera & Photo › Video Surveillance › Surveillance Cameras",
              ("security camera", "wifi camera", "dome camera"), ("style", "pack"),
              ("night vision", "motion detection", "two way audio", "1080p hd", "easy install", "cloud storage",
               "outdoor use", "weather resistant"), (22.0, 200.0), "home"),
    QuerySpec("remote control", "electronics", f"{_E} › Television & Video › Accessories › Remote Controls",
              ("remote control", "replacement remote", "universal remote"), ("style", "pack"),
              ("easy use", "batteries included", "no programming", "long range", "replacement remote"),
              (6.0, 30.0), "device"),
    # fashion
    QuerySpec("women's dress", "fashion", f"{_F} › Women › Clothing › Dresses › Casual",
              ("dress", "maxi dress", "midi dress", "shirt dress"), ("color", "apparel_size"),
              ("short sleeve", "long sleeve", "machine wash", "high waist", "elastic waist", "loose fit",
               "polyester spandex", "daily wear", "hand wash", "button closure"), (15.0, 60.0), "women"),
    QuerySpec("men's t-shirt", "fashion", f"{_F} › Men › Clothing › Shirts › T-Shirts",
              ("t shirt", "graphic tee", "crew neck shirt", "tee shirt"), ("color", "apparel_size"),
              ("short sleeve", "machine wash", "cotton spandex", "slim fit", "regular fit", "crew neck",
               "moisture wicking", "tumble dry", "classic fit"), (9.0, 35.0), "men"),
    QuerySpec("running shoes", "fashion", f"{_F} › Men › Shoes › Athletic › Running",
              ("running shoes", "sneakers", "walking shoes", "trail shoes"), ("color", "shoe_size"),
              ("rubber sole", "lace up", "memory foam", "non slip", "arch support", "breathable mesh",
               "lightweight design", "slip resistant"), (25.0, 130.0), "people"),
    QuerySpec("women's jeans", "fashion", f"{_F} › Women › Clothing › Jeans › Skinny",
              ("jeans", "skinny jeans", "denim jeans", "jeggings"), ("color", "apparel_size"),
              ("high waist", "button closure", "machine wash", "stretch denim", "slim fit", "butt lifting",
               "zipper closure", "cotton spandex"), (18.0, 70.0), "women"),
    QuerySpec("men's shorts", "fashion", f"{_F} › Men › Clothing › Shorts › Cargo",
              ("shorts", "cargo shorts", "swim trunks", "board shorts"), ("color", "apparel_size"),
              ("elastic waist", "drawstring closure", "quick dry", "machine wash", "relaxed fit",
               "polyester spandex", "mesh lining"), (12.0, 45.0), "men"),
    QuerySpec("hoodie", "fashion", f"{_F} › Women › Clothing › Fashion Hoodies & Sweatshirts",
              ("hoodie", "pullover hoodie", "zip up hoodie", "sweatshirt"), ("color", "apparel_size"),
              ("long sleeve", "drawstring closure", "machine wash", "fleece lined", "kangaroo pocket",
               "loose fit", "cotton blend"), (16.0, 55.0), "people"),
    QuerySpec("watch band", "fashion", f"{_F} › Men › Watches › Watch Bands",
              ("watch band", "replacement band", "strap"), ("color", "style"),
              ("stainless steel", "quick release", "easy install", "leather band", "adjustable size",
               "sweat resistant"), (6.0, 40.0), "people"),
    QuerySpec("socks", "fashion", f"{_F} › Men › Clothing › Socks › Athletic Socks",
              ("socks", "ankle socks", "crew socks", "compression socks"), ("color", "pack"),
              ("moisture wicking", "arch support", "cotton blend", "machine wash", "cushioned sole",
               "breathable mesh"), (8.0, 30.0), "people"),
    # garden (home, furniture, patio)
    QuerySpec("coffee table", "garden", f"{_G} › Furniture › Living Room Furniture › Tables › Coffee Tables",
              ("coffee table", "side table", "end table"), ("color", "table_size", "material"),
              ("easy assemble", "storage space", "solid wood", "mid century", "living room", "metal frame",
               "engineered wood", "easy clean"), (45.0, 320.0), "home"),
    QuerySpec("bed sheets", "garden", f"{_G} › Bedding › Sheets & Pillowcases › Sheet & Pillowcase Sets",
              ("sheet set", "bed sheets", "fitted sheet"), ("color", "bed_size"),
              ("deep pocket", "machine wash", "microfiber", "wrinkle free", "breathable cotton", "queen size",
               "king size", "easy care"), (19.0, 90.0), ""),
    QuerySpec("curtains", "garden", f"{_G} › Home Décor Products › Window Treatments › Curtains & Drapes › Panels",
              ("curtains", "blackout curtains", "curtain panels", "window drapes"), ("color", "panel_size"),
              ("blackout", "thermal insulated", "machine wash", "noise reducing", "grommet top",
               "living room", "light blocking"), (14.0, 70.0), "home"),
    QuerySpec("garden hose", "garden", "Patio, Lawn & Garden › Watering Equipment › Garden Hoses",
              ("garden hose", "expandable hose", "water hose"), ("hose_length", "color"),
              ("leak proof", "heavy duty", "spray nozzle", "kink free", "lightweight design", "outdoor use",
               "brass fittings"), (18.0, 80.0), ""),
    QuerySpec("office chair", "garden", f"{_G} › Furniture › Home Office Furniture › Home Office Chairs › Desk Chairs",
              ("office chair", "desk chair", "gaming chair"), ("color", "style"),
              ("lumbar support", "height adjustable", "easy assemble", "high back", "breathable mesh",
               "swivel chair", "heavy duty"), (60.0, 300.0), ""),
    QuerySpec("bath towels", "garden", f"{_G} › Bath › Towels › Bath Towels",
              ("bath towels", "towel set", "hand towels"), ("color", "pack"),
              ("highly absorbent", "quick dry", "machine wash", "soft cotton", "hotel quality", "easy care"),
              (12.0, 60.0), ""),
    QuerySpec("storage shelf", "garden", f"{_G} › Storage & Organization › Racks, Shelves & Drawers › Standing Shelf Units",
              ("storage shelf", "shelving unit", "bookshelf"), ("color", "material"),
              ("easy assemble", "storage space", "heavy duty", "metal frame", "living room", "space saving",
               "engineered wood"), (25.0, 160.0), "home"),
    QuerySpec("plant pot", "garden", "Patio, Lawn & Garden › Gardening & Lawn Care › Pots, Planters & Container Accessories › Planters",
              ("plant pot", "planter", "flower pot"), ("color", "pack"),
              ("drainage hole", "indoor outdoor", "easy clean", "ceramic", "modern design", "plastic"),
              (9.0, 45.0), ""),
    # grocery
    QuerySpec("coffee", "grocery", f"{_Q} › Beverages › Coffee, Tea & Cocoa › Coffee › Ground Coffee",
              ("ground coffee", "coffee beans", "coffee pods"), ("flavor", "weight"),
              ("medium roast", "dark roast", "gluten free", "non gmo", "fair trade", "single origin",
               "caffeine free", "low acid"), (7.0, 40.0), ""),
    QuerySpec("snack bars", "grocery", f"{_Q} › Snack Foods › Bars › Nutrition Bars",
              ("protein bars", "snack bars", "granola bars"), ("flavor", "weight"),
              ("gluten free", "high protein", "low sugar", "non gmo", "plant based", "keto friendly",
               "individually wrapped", "low carb"), (9.0, 45.0), ""),
    QuerySpec("tea", "grocery", f"{_Q} › Beverages › Coffee, Tea & Cocoa › Tea › Herbal",
              ("herbal tea", "green tea", "tea bags"), ("flavor", "weight"),
              ("caffeine free", "usda organic", "non gmo", "gluten free", "sugar free", "natural ingredients",
               "individually wrapped"), (5.0, 30.0), ""),
    QuerySpec("chips", "grocery", f"{_Q} › Snack Foods › Chips & Crisps › Potato Chips",
              ("potato chips", "tortilla chips", "kettle chips"), ("flavor", "weight"),
              ("gluten free", "non gmo", "kosher certified", "low fat", "plant based", "individually wrapped",
               "baked"), (3.0, 30.0), ""),
    QuerySpec("olive oil", "grocery", f"{_Q} › Pantry Staples › Cooking Oils, Vinegars & Sprays › Oils › Olive",
              ("extra virgin olive oil", "olive oil", "cooking oil"), ("volume", "pack"),
              ("cold pressed", "non gmo", "usda organic", "first cold", "gluten free", "glass bottle"),
              (8.0, 45.0), ""),
    QuerySpec("dog treats", "grocery", "Pet Supplies › Dogs › Treats › Jerky",
              ("dog treats", "jerky treats", "dental chews"), ("flavor", "weight"),
              ("grain free", "made usa", "natural ingredients", "high protein", "single ingredient",
               "easy digest"), (6.0, 40.0), "pet"),
    QuerySpec("candy", "grocery", f"{_Q} › Candy & Chocolate › Chocolate › Chocolate Bars",
              ("chocolate bar", "candy", "gummy candy"), ("flavor", "pack"),
              ("gluten free", "individually wrapped", "kosher certified", "sugar free", "gift box",
               "valentine day", "dark chocolate"), (4.0, 35.0), ""),
)
