"""Jobs whose worker processes track into the run, and how the tests run and count them."""
