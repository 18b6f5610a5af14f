"""A deterministic synthetic demo brand (小林母婴美妆): its catalogue and a stream of its events."""
