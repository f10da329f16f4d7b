"""Early checks of the composed training config: unknown keys, wrong types, out-of-range values.

``check_config(cfg)`` looks at the config Hydra composed (``configs/train.yaml`` + overrides)
before any data is read, and raises :class:`ConfigError` listing every problem, one line each::

    trainer.max_epochs: got 'abc' (str); expected int or null (max_epochs of lightning.Trainer)
    ckpt_path: got 'x.ckpt' (str); expected a known top-level key: nothing reads 'ckpt_path' ...

What is checked:

* every node with a ``_target_`` (trainer, model, model.text, loss and its terms, optimizer,
  scheduler, datamodule, protocol, logger, callbacks.*, data.source, ...): the target imports;
  each key is a parameter of it (unless it takes ``**kwargs``); each value matches the
  parameter's annotation as far as a config value can (int, float, bool, str, null, Union,
  Literal, lists, dicts; tensors, callables and other classes are not type-checked); required
  parameters are present (not for ``_partial_`` nodes). ``data.text`` is checked the same way
  against :class:`hybridrec.data.preparation.text.TextConfig` (see ``NODE_SCHEMAS``).
* top-level keys against those the shipped configs define (``configs/train.yaml``, its groups,
  and whatever the ``experiment`` / ``debug`` options add), with the types in
  ``TOP_LEVEL_TYPES``; the keys of nodes without a ``_target_`` (``data``, ``paths``,
  ``callbacks``) against the keys that node has across every shipped option of its group.
* value ranges and cross-key rules from the declarative table ``RULES``.

Values that are ``???`` or interpolations that cannot be resolved yet (``${spec.n_items}``,
``${datamodule.data_dir}``: filled in at run time) are skipped; an interpolation to a key that
does not exist is a problem. A plain reference such as ``${seed}`` is checked where it is set.

The modules, each using only those above it (what one takes from another is public; a
leading underscore means that module only):

* ``problems``: :class:`Problem`, :class:`ConfigError`, how a value shows in a problem line.
* ``annotations``: what an annotation accepts, in words, and whether a config value fits it.
* ``targets``: the parameters of a ``_target_``, read from its signature (cached).
* ``rules``: the declarative tables: ``RULES`` (ranges, cross-key rules), ``TOP_LEVEL_TYPES``;
  a range a constructor checks too is a named validator of :mod:`hybridrec.validators`, the
  one place that rule and its sentence are written.
* ``keys``: which keys the shipped configs define (composed once, cached).
* ``values``: the check of one value: its type, then its rule.
* ``walk``: :func:`check_config` and the walk over the config tree.
"""

from hybridrec.cli.checks.annotations import TargetNode as TargetNode
from hybridrec.cli.checks.annotations import matches as matches
from hybridrec.cli.checks.keys import UNCHECKED as UNCHECKED
from hybridrec.cli.checks.keys import default_keys as default_keys
from hybridrec.cli.checks.keys import group_keys as group_keys
from hybridrec.cli.checks.problems import ConfigError, Problem
from hybridrec.cli.checks.rules import RULES as RULES
from hybridrec.cli.checks.rules import TOP_LEVEL_TYPES as TOP_LEVEL_TYPES
from hybridrec.cli.checks.rules import UNREAD_HINTS as UNREAD_HINTS
from hybridrec.cli.checks.rules import Rule as Rule
from hybridrec.cli.checks.targets import KWARGS_GO_TO as KWARGS_GO_TO
from hybridrec.cli.checks.targets import NODE_SCHEMAS as NODE_SCHEMAS
from hybridrec.cli.checks.targets import RESERVED as RESERVED
from hybridrec.cli.checks.walk import check_config

__all__ = ["ConfigError", "Problem", "check_config"]
