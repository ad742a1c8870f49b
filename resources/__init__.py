"""Package data of vo-al (the application icon), found through importlib.resources."""
