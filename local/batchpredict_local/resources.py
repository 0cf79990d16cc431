"""Creates the template's tables, queues, topics, buckets and event buses in moto.

Each resource gets its physical name as CloudFormation would give it (its declared name, else
``<stack>-<LogicalId>``); Ref and Fn::GetAtt then resolve to those names, URLs and ARNs.
Resources of other types (roles, alarms, dashboards, log groups, ...) are not created: a Ref to
them resolves to a plausible name so that environment variables and policies still resolve.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from batchpredict_local.errors import TemplateError
from batchpredict_local.intrinsics import Resolver, references
from batchpredict_local.template import ACCOUNT_ID, PARTITION, REGION, LoadedTemplate

log = logging.getLogger(__name__)

TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
TOPIC = "AWS::SNS::Topic"
BUCKET = "AWS::S3::Bucket"
EVENT_BUS = "AWS::Events::EventBus"
FUNCTION = "AWS::Lambda::Function"
CREATED_TYPES = (TABLE, QUEUE, TOPIC, BUCKET, EVENT_BUS)

# CloudFormation's AWS::SQS::Queue properties that are queue attributes of the same name.
_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
)


@dataclass
class Physical:
    """What Ref and Fn::GetAtt answer for one resource."""

    ref: Any
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Table:
    logical_id: str
    name: str
    ttl_attribute: str | None


@dataclass
class Queue:
    logical_id: str
    name: str
    url: str
    arn: str
    attributes: dict[str, str]

    @property
    def visibility_timeout(self) -> int:
        return int(self.attributes.get("VisibilityTimeout", 30))


class Provisioner:
    def __init__(self, template: LoadedTemplate, stack_name: str, clients: dict[str, Any]) -> None:
        self.template = template
        self.stack_name = stack_name
        self._clients = clients
        self.physical: dict[str, Physical] = {}
        self.tables: dict[str, Table] = {}
        self.queues: dict[str, Queue] = {}
        self.created: list[str] = []
        self.resolver = Resolver(
            self._ref,
            self._get_att,
            conditions=template.cfn.get("Conditions"),
            mappings=template.cfn.get("Mappings"),
        )
        self.active = {
            lid: res
            for lid, res in template.resources().items()
            if "Condition" not in res or self.resolver.condition(res["Condition"])
        }

    # -- Ref / GetAtt --------------------------------------------------------------------------
    def _pseudo(self, name: str) -> Any:
        return {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT_ID}:stack/"
            f"{self.stack_name}/00000000-0000-0000-0000-000000000000",
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
        }[name]

    def _ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self._pseudo(name)
        if name in self.template.parameters:
            return self.template.parameters[name]
        return self._physical(name).ref

    def _get_att(self, logical_id: str, attribute: str) -> Any:
        physical = self._physical(logical_id)
        if attribute in physical.attributes:
            return physical.attributes[attribute]
        if attribute == "Arn":
            return f"arn:{PARTITION}:local:{REGION}:{ACCOUNT_ID}:{physical.ref}"
        return f"{physical.ref}-{attribute}"

    def _physical(self, logical_id: str) -> Physical:
        if logical_id in self.physical:
            return self.physical[logical_id]
        resource = self.active.get(logical_id)
        if resource is None:
            raise KeyError(logical_id)
        if resource["Type"] in CREATED_TYPES:
            raise TemplateError(f"{logical_id} is referred to before it exists (a cycle?)")
        physical = self._passive(logical_id, resource)
        self.physical[logical_id] = physical
        return physical

    def _name(self, logical_id: str, props: dict[str, Any], key: str) -> str:
        if key in props:
            return str(self.resolver.resolve(props[key]))
        return f"{self.stack_name}-{logical_id}"

    def _passive(self, logical_id: str, resource: dict[str, Any]) -> Physical:
        """Names for resources that are not created locally."""
        kind = resource["Type"]
        props = resource.get("Properties", {}) or {}
        arn_prefix = f"arn:{PARTITION}"
        if kind == FUNCTION:
            name = self._name(logical_id, props, "FunctionName")
            arn = f"{arn_prefix}:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
            return Physical(name, {"Arn": arn})
        if kind == "AWS::IAM::Role":
            name = self._name(logical_id, props, "RoleName")
            return Physical(name, {"Arn": f"{arn_prefix}:iam::{ACCOUNT_ID}:role/{name}"})
        if kind == "AWS::Lambda::LayerVersion":
            name = self._name(logical_id, props, "LayerName")
            return Physical(f"{arn_prefix}:lambda:{REGION}:{ACCOUNT_ID}:layer:{name}:1")
        if kind == "AWS::ApiGateway::RestApi":
            api_id = hashlib.sha1(f"{self.stack_name}/{logical_id}".encode()).hexdigest()[:10]
            return Physical(api_id, {"RootResourceId": api_id[:6]})
        if kind == "AWS::Events::Rule":
            name = self._name(logical_id, props, "Name")
            return Physical(name, {"Arn": f"{arn_prefix}:events:{REGION}:{ACCOUNT_ID}:rule/{name}"})
        if kind == "AWS::Logs::LogGroup":
            name = self._name(logical_id, props, "LogGroupName")
            return Physical(
                name, {"Arn": f"{arn_prefix}:logs:{REGION}:{ACCOUNT_ID}:log-group:{name}:*"}
            )
        return Physical(f"{self.stack_name}-{logical_id}")

    # -- creation ------------------------------------------------------------------------------
    def _creation_order(self) -> list[str]:
        pending = {lid for lid, res in self.active.items() if res["Type"] in CREATED_TYPES}
        deps = {
            lid: references(self.active[lid].get("Properties", {})) & pending - {lid}
            for lid in pending
        }
        order: list[str] = []
        while pending:
            ready = sorted(lid for lid in pending if not deps[lid] - set(order))
            if not ready:
                raise TemplateError(f"circular references among {sorted(pending)}")
            order.extend(ready)
            pending -= set(ready)
        return order

    def create_all(self) -> None:
        for logical_id in self._creation_order():
            self.created.append(logical_id)
            resource = self.active[logical_id]
            props = self.resolver.resolve(resource.get("Properties", {}) or {})
            creator = {
                TABLE: self._create_table,
                QUEUE: self._create_queue,
                TOPIC: self._create_topic,
                BUCKET: self._create_bucket,
                EVENT_BUS: self._create_event_bus,
            }[resource["Type"]]
            self.physical[logical_id] = creator(logical_id, props)

    def delete_all(self) -> None:
        """Deletes what create_all made (moto may outlive this stack: it is shared)."""
        for logical_id in reversed(self.created):
            physical = self.physical.get(logical_id)
            if physical is None:
                continue
            kind = self.active[logical_id]["Type"]
            try:
                if kind == TABLE:
                    self._clients["dynamodb"].delete_table(TableName=physical.ref)
                elif kind == QUEUE:
                    self._clients["sqs"].delete_queue(QueueUrl=physical.ref)
                elif kind == TOPIC:
                    self._clients["sns"].delete_topic(TopicArn=physical.ref)
                elif kind == BUCKET:
                    s3 = self._clients["s3"]
                    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=physical.ref):
                        for item in page.get("Contents", []):
                            s3.delete_object(Bucket=physical.ref, Key=item["Key"])
                    s3.delete_bucket(Bucket=physical.ref)
                elif kind == EVENT_BUS:
                    self._clients["events"].delete_event_bus(Name=physical.ref)
            except Exception:
                log.debug("could not delete %s", logical_id, exc_info=True)
        self.created.clear()

    def _create_table(self, logical_id: str, props: dict[str, Any]) -> Physical:
        ddb = self._clients["dynamodb"]
        name = str(props.get("TableName") or f"{self.stack_name}-{logical_id}")
        spec: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if spec["BillingMode"] == "PROVISIONED":
            spec["ProvisionedThroughput"] = props.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            )
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if props.get(key):
                spec[key] = props[key]
        if props.get("StreamSpecification"):
            spec["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": props["StreamSpecification"]["StreamViewType"],
            }
        if props.get("Tags"):
            spec["Tags"] = props["Tags"]
        table = ddb.create_table(**spec)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification") or {}
        ttl_attribute = None
        if _truthy(ttl.get("Enabled")) and ttl.get("AttributeName"):
            ttl_attribute = str(ttl["AttributeName"])
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute},
            )
        self.tables[logical_id] = Table(logical_id, name, ttl_attribute)
        attributes = {"Arn": table["TableArn"]}
        if "LatestStreamArn" in table:
            attributes["StreamArn"] = table["LatestStreamArn"]
        return Physical(name, attributes)

    def _create_queue(self, logical_id: str, props: dict[str, Any]) -> Physical:
        sqs = self._clients["sqs"]
        fifo = _truthy(props.get("FifoQueue"))
        name = str(props.get("QueueName") or f"{self.stack_name}-{logical_id}")
        if fifo and not name.endswith(".fifo"):
            name += ".fifo"
        attributes = {k: _attribute(props[k]) for k in _QUEUE_ATTRIBUTES if k in props}
        for key in ("RedrivePolicy", "RedriveAllowPolicy"):
            if key in props:
                value = props[key]
                attributes[key] = value if isinstance(value, str) else json.dumps(value)
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        actual = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        queue = Queue(logical_id, name, url, actual["QueueArn"], actual)
        self.queues[logical_id] = queue
        return Physical(url, {"Arn": queue.arn, "QueueName": name, "QueueUrl": url})

    def _create_topic(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = str(props.get("TopicName") or f"{self.stack_name}-{logical_id}")
        attributes = {"FifoTopic": "true"} if _truthy(props.get("FifoTopic")) else {}
        arn = self._clients["sns"].create_topic(Name=name, Attributes=attributes)["TopicArn"]
        return Physical(arn, {"TopicArn": arn, "TopicName": name})

    def _create_bucket(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = str(props.get("BucketName") or f"{self.stack_name}-{logical_id}".lower())
        self._clients["s3"].create_bucket(Bucket=name)
        return Physical(
            name,
            {
                "Arn": f"arn:{PARTITION}:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{REGION}.amazonaws.com",
            },
        )

    def _create_event_bus(self, logical_id: str, props: dict[str, Any]) -> Physical:
        name = str(props.get("Name") or f"{self.stack_name}-{logical_id}")
        arn = self._clients["events"].create_event_bus(Name=name)["EventBusArn"]
        return Physical(name, {"Arn": arn, "Name": name})


def _truthy(value: Any) -> bool:
    return str(value).lower() == "true"


def _attribute(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
