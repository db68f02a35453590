"""cloudorch-aws: the `aws` provider of cloudorch (boto3, imported lazily).

Re-exports the provider class the `cloudorch.providers` entry point names. Each service lives in
its own module (`s3`, `sqs`, `dynamodb`, ...); `provider` owns configuration, clients and error
classification. Importing this package must not import boto3: `cloudorch --help` stays fast.
"""

from cloudorch_aws.provider import AwsConfig, AwsProvider

__all__ = ["AwsConfig", "AwsProvider"]
