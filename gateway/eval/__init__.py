"""``mpr-gateway eval``: measure refinement quality (skip gate, typo restoration, collateral edits).

Modules: :mod:`.prompts` loads prompt files, :mod:`.words` tokenises, :mod:`.noise` injects seeded
typos, :mod:`.score` aligns clean and refined text (pure), :mod:`.backends` refines in-process or
over HTTP, :mod:`.runner` runs every prompt at every noise level, :mod:`.report` computes the
figures (pure), :mod:`.render` prints them, :mod:`.command` is the subcommand.
"""
