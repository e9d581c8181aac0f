"""The suite file: TOML read into frozen dataclasses, mistakes as one clear line."""
