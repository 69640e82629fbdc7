"""Project cfn-lint rules, loaded through ``append_rules`` in .cfnlintrc.yaml."""
