"""Compose: article text to excerpt (:mod:`.excerpt`), lengths as each platform counts them
(:mod:`.length`), and posts rendered from the editors' templates and fitted (:mod:`.render`)."""
