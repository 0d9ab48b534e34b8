"""Training recipes: name -> Recipe class (filled in as recipes land)."""
