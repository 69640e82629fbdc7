"""The deployer: everything that talks to AWS (boto3) lives in this package.

``deployer.py`` orchestrates (its ``deploy()`` names the phases in order); ``options`` holds the
frozen options ``cli.py`` builds; the other modules each do one step: ``inputs`` (parameter file,
lint, freshness: no AWS), ``aws`` (session, clients, identity), ``package`` (artifacts bucket,
uploads, TemplateURL rewrite), ``changeset`` (create, wait, read every page and every nested
change set, the review table), ``guard`` (refuse to lose data: pure functions over the change
sets), ``events`` (stream stack events, explain failures), ``protect`` (termination protection
and stack policies). The operating commands each have a module: ``status``, ``drift``,
``smoke``, ``publish`` (publish-frontend), ``destroy``; ``triggers`` decides the rollback
triggers a deploy arms, ``live`` reads the running ECS service.
"""
