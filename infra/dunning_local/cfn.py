"""template.yaml as data: the CloudFormation YAML dialect, the SAM transform and intrinsic functions.

Three jobs, all offline:

- :class:`CloudFormationLoader` reads the short tags (``!Ref``, ``!GetAtt``, ``!Sub`` …) into the long
  forms CloudFormation itself uses (``{"Ref": …}``, ``{"Fn::GetAtt": […]}``), so the rest of the code
  sees one shape;
- :func:`sam_transform` runs the SAM translator on a template to get the plain CloudFormation that
  AWS would deploy (what the IAM test and the moto stack test inspect);
- :class:`IntrinsicResolver` evaluates intrinsic functions against values supplied by the caller
  (parameters, pseudo parameters, resource references): the local stack uses it to turn the template
  into names, ARNs and environment variables.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"

Template = dict[str, Any]


class CloudFormationLoader(yaml.SafeLoader):
    """A safe YAML loader that reads CloudFormation short-form tags into their long forms."""


# CloudFormation keeps `AWSTemplateFormatVersion: 2010-09-09` (and any other date-like scalar) a string;
# plain YAML 1.1 would turn it into a datetime.date.
CloudFormationLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _node_value(loader: CloudFormationLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    raise yaml.constructor.ConstructorError(None, None, f"unexpected node {node.tag}", node.start_mark)


def _long_form(name: str) -> Callable[[CloudFormationLoader, yaml.Node], dict[str, Any]]:
    def construct(loader: CloudFormationLoader, node: yaml.Node) -> dict[str, Any]:
        return {name: _node_value(loader, node)}

    return construct


def _construct_get_att(loader: CloudFormationLoader, node: yaml.Node) -> dict[str, Any]:
    value = _node_value(loader, node)
    if isinstance(value, str):
        # `!GetAtt Table.StreamArn`; attribute names may themselves contain dots (`Endpoint.Address`).
        resource, sep, attribute = value.partition(".")
        if not sep:
            raise yaml.constructor.ConstructorError(
                None, None, f"!GetAtt {value!r} needs the form Resource.Attribute", node.start_mark
            )
        return {"Fn::GetAtt": [resource, attribute]}
    return {"Fn::GetAtt": value}


_SHORT_TAGS = {
    "Ref": "Ref",
    "Condition": "Condition",
    "Sub": "Fn::Sub",
    "Join": "Fn::Join",
    "If": "Fn::If",
    "Equals": "Fn::Equals",
    "Not": "Fn::Not",
    "And": "Fn::And",
    "Or": "Fn::Or",
    "Select": "Fn::Select",
    "Split": "Fn::Split",
    "FindInMap": "Fn::FindInMap",
    "GetAZs": "Fn::GetAZs",
    "ImportValue": "Fn::ImportValue",
    "Base64": "Fn::Base64",
    "Cidr": "Fn::Cidr",
}
for _tag, _name in _SHORT_TAGS.items():
    CloudFormationLoader.add_constructor(f"!{_tag}", _long_form(_name))
CloudFormationLoader.add_constructor("!GetAtt", _construct_get_att)


def load_template(path: str | Path = TEMPLATE_PATH) -> Template:
    """Read a CloudFormation/SAM template (YAML or JSON) with intrinsic functions in long form."""
    with open(path, encoding="utf-8") as stream:
        document = yaml.load(stream, Loader=CloudFormationLoader)
    if not isinstance(document, dict) or "Resources" not in document:
        raise ValueError(f"{path} is not a CloudFormation template (no Resources)")
    return document


# ---------------------------------------------------------------------------------------------------
# SAM transform


_LOCAL_ARTIFACT_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}
LOCAL_ARTIFACT_BUCKET = "local-artifacts"


def local_artifact_key(path: str) -> str:
    """The S3 key an offline transform gives a local CodeUri/ContentUri (as `sam package` would upload)."""
    return path.strip("/").replace("/", "-") + ".zip"


def sam_transform(
    template: Template,
    *,
    region: str = "us-east-1",
    parameters: Mapping[str, Any] | None = None,
) -> Template:
    """The plain CloudFormation that the SAM transform makes of ``template``, computed offline.

    Local ``CodeUri``/``ContentUri`` folders are first replaced by S3 locations in the bucket
    :data:`LOCAL_ARTIFACT_BUCKET` (key from :func:`local_artifact_key`), which is what ``sam package``
    does before the real transform runs.
    """
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.arn_generator import ArnGenerator
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import (
        to_py27_compatible_template,
        undo_mark_unicode_str_in_template,
    )

    document = copy.deepcopy(template)
    for resource in document.get("Resources", {}).values():
        prop = _LOCAL_ARTIFACT_PROPERTIES.get(resource.get("Type", ""))
        value = resource.get("Properties", {}).get(prop) if prop else None
        if isinstance(value, str) and not value.startswith("s3://"):
            resource["Properties"][prop] = f"s3://{LOCAL_ARTIFACT_BUCKET}/{local_artifact_key(value)}"
    values = dict(parameters or {})
    to_py27_compatible_template(document, values)
    # The translator builds ARNs with the session's region; none is configured offline.
    session = boto3.Session(region_name=region)
    ArnGenerator.BOTO_SESSION_REGION_NAME = region
    translator = Translator(None, Parser(), boto_session=session)
    transformed = translator.translate(document, values, get_managed_policy_map=_no_managed_policies)
    result: Template = undo_mark_unicode_str_in_template(transformed)
    return result


def _no_managed_policies() -> dict[str, str]:
    # The offline transform cannot list AWS managed policies, and the template does not name any.
    raise ValueError("the template refers to an AWS managed policy by name; the offline transform cannot")


# ---------------------------------------------------------------------------------------------------
# Intrinsic functions


class NoValue:
    """``AWS::NoValue``: the property or list item it is the value of disappears."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = NoValue()

PSEUDO_PARAMETERS = (
    "AWS::AccountId",
    "AWS::Region",
    "AWS::Partition",
    "AWS::StackName",
    "AWS::StackId",
    "AWS::URLSuffix",
    "AWS::NoValue",
    "AWS::NotificationARNs",
)


def parameter_values(template: Template, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Each parameter's value: the override if given, else its Default (a parameter with neither is absent).

    Values are what ``Ref`` returns: strings (numbers too, as CloudFormation does), lists for the
    ``CommaDelimitedList``/``List<…>`` types.
    """
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(template.get("Parameters", {}))
    if unknown:
        raise KeyError(f"no such template parameter(s): {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, spec in template.get("Parameters", {}).items():
        if name in overrides:
            value = overrides[name]
        elif "Default" in spec:
            value = spec["Default"]
        else:
            continue
        kind = spec.get("Type", "String")
        if (kind == "CommaDelimitedList" or kind.startswith("List<")) and isinstance(value, str):
            value = [item.strip() for item in value.split(",")] if value else []
        elif not isinstance(value, list):
            value = str(value).lower() if isinstance(value, bool) else str(value)
        values[name] = value
    return values


_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def sub_references(text: str) -> list[str]:
    """Names a ``Fn::Sub`` string refers to (``Res``, ``Res.Attr``, ``AWS::Region``), literals excluded."""
    return [name.strip() for name in _SUB_VARIABLE.findall(text) if not name.startswith("!")]


def references(value: Any) -> set[str]:
    """Logical ids (or parameter names) that ``value`` refers to through Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                target = arg[0] if isinstance(arg, list) else str(arg).partition(".")[0]
                found.add(target)
            elif key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                for name in sub_references(text):
                    if name not in variables:
                        found.add(name.partition(".")[0])
                found |= references(variables)
                return found
        for item in value.values():
            found |= references(item)
    elif isinstance(value, list):
        for item in value:
            found |= references(item)
    return found


RefLookup = Callable[[str], Any]
GetAttLookup = Callable[[str, str], Any]


class IntrinsicResolver:
    """Evaluates intrinsic functions in template values.

    ``ref`` answers ``Ref`` of a resource, ``get_att`` answers ``Fn::GetAtt``; parameters and pseudo
    parameters are looked up here first. ``Fn::ImportValue`` and ``Fn::Cidr`` are not supported (the
    template has no use for them): they raise, so a new use cannot silently resolve to nonsense.
    """

    def __init__(
        self,
        template: Template,
        *,
        parameters: Mapping[str, Any],
        pseudo: Mapping[str, Any],
        ref: RefLookup,
        get_att: GetAttLookup,
    ) -> None:
        self.template = template
        self.parameters = dict(parameters)
        self.pseudo = {**pseudo, "AWS::NoValue": NO_VALUE}
        self._ref = ref
        self._get_att = get_att
        self._conditions: dict[str, bool] = {}

    # -- conditions -------------------------------------------------------------------------------
    def condition(self, name: str) -> bool:
        """The value of the template condition ``name``."""
        if name not in self._conditions:
            spec = self.template.get("Conditions", {}).get(name)
            if spec is None:
                raise KeyError(f"no such condition: {name}")
            self._conditions[name] = bool(self.resolve(spec))
        return self._conditions[name]

    def resource_enabled(self, logical_id: str) -> bool:
        """False when the resource carries a Condition that is false."""
        name = self.template["Resources"][logical_id].get("Condition")
        return True if name is None else self.condition(name)

    # -- values -----------------------------------------------------------------------------------
    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.template.get("Parameters", {}):
            raise KeyError(f"parameter {name} has no default and no value was given")
        if name in self.template.get("Resources", {}):
            return self._ref(name)
        raise KeyError(f"Ref to unknown name {name!r}")

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function evaluated and ``AWS::NoValue`` entries removed."""
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            handler = self._FUNCTIONS.get(key)
            if handler is not None:
                return handler(self, arg)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def _fn_ref(self, arg: Any) -> Any:
        return self.ref(self.resolve(arg))

    def _fn_get_att(self, arg: Any) -> Any:
        if isinstance(arg, str):
            resource, _, attribute = arg.partition(".")
        else:
            resource, attribute = arg[0], self.resolve(arg[1])
        return self._get_att(resource, attribute)

    def _fn_sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                resource, _, attribute = name.partition(".")
                return str(self._get_att(resource, attribute))
            return str(self.ref(name))

        return _SUB_VARIABLE.sub(substitute, text)

    def _fn_join(self, arg: Any) -> str:
        delimiter, items = arg[0], self.resolve(arg[1])
        return str(delimiter).join(str(item) for item in items)

    def _fn_if(self, arg: Any) -> Any:
        name, when_true, when_false = arg
        return self.resolve(when_true if self.condition(name) else when_false)

    def _fn_equals(self, arg: Any) -> bool:
        left, right = (self.resolve(item) for item in arg)
        return str(left) == str(right)

    def _fn_not(self, arg: Any) -> bool:
        return not self.resolve(arg[0])

    def _fn_and(self, arg: Any) -> bool:
        return all(self.resolve(item) for item in arg)

    def _fn_or(self, arg: Any) -> bool:
        return any(self.resolve(item) for item in arg)

    def _fn_condition(self, arg: Any) -> bool:
        return self.condition(arg)

    def _fn_select(self, arg: Any) -> Any:
        index, items = self.resolve(arg[0]), self.resolve(arg[1])
        return items[int(index)]

    def _fn_split(self, arg: Any) -> list[str]:
        delimiter, text = arg[0], self.resolve(arg[1])
        return str(text).split(delimiter)

    def _fn_find_in_map(self, arg: Any) -> Any:
        mapping, first, second = (self.resolve(item) for item in arg)
        return self.template["Mappings"][mapping][first][second]

    def _fn_get_azs(self, arg: Any) -> list[str]:
        region = self.resolve(arg) or self.pseudo["AWS::Region"]
        return [f"{region}{zone}" for zone in "abc"]

    def _fn_base64(self, arg: Any) -> str:
        return base64.b64encode(str(self.resolve(arg)).encode()).decode()

    def _fn_unsupported(self, arg: Any) -> Any:
        raise NotImplementedError(f"intrinsic function not resolvable locally: {json.dumps(arg)}")

    _FUNCTIONS: ClassVar[dict[str, Callable[[IntrinsicResolver, Any], Any]]] = {
        "Ref": _fn_ref,
        "Fn::GetAtt": _fn_get_att,
        "Fn::Sub": _fn_sub,
        "Fn::Join": _fn_join,
        "Fn::If": _fn_if,
        "Fn::Equals": _fn_equals,
        "Fn::Not": _fn_not,
        "Fn::And": _fn_and,
        "Fn::Or": _fn_or,
        "Condition": _fn_condition,
        "Fn::Select": _fn_select,
        "Fn::Split": _fn_split,
        "Fn::FindInMap": _fn_find_in_map,
        "Fn::GetAZs": _fn_get_azs,
        "Fn::Base64": _fn_base64,
        "Fn::ImportValue": _fn_unsupported,
        "Fn::Cidr": _fn_unsupported,
    }


def merged_function_properties(template: Template, logical_id: str) -> dict[str, Any]:
    """A ``AWS::Serverless::Function``'s properties with ``Globals.Function`` merged in, as SAM merges them.

    Maps merge key by key (the function wins), lists are Globals first then the function's, scalars
    come from the function when it sets them.
    """
    resource = template["Resources"][logical_id]
    if resource.get("Type") != "AWS::Serverless::Function":
        raise KeyError(f"{logical_id} is not an AWS::Serverless::Function")
    defaults = template.get("Globals", {}).get("Function", {})
    return _merge(copy.deepcopy(defaults), copy.deepcopy(resource.get("Properties", {})))


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict) and not _is_intrinsic(override):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(override, list):
        return base + override
    return override


def _is_intrinsic(value: dict[str, Any]) -> bool:
    return len(value) == 1 and next(iter(value)) in IntrinsicResolver._FUNCTIONS
