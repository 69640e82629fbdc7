"""karematch-cfn: the KareMatch AWS architecture as nested CloudFormation templates."""

__version__ = "0.1.0"
