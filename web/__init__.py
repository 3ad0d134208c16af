"""The instrument-centre web site (``svomflow web``): pages and REST API over svomflow's databases."""
