"""Reading files so that every problem says where it is (STYLE.md, habit 5).

One problem type for every file we read (config TOML, detection rule YAML, the conditions inside rules),
and one reader per format that keeps the line of each key: yaml_reader.py for rules, toml_reader.py for
the config. The readers know nothing of what the files mean; the config and rule loaders do.
"""
