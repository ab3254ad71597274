import { CfnOutput, CfnParameter, Stack, StackProps } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { EcrReplication } from './ecr-replication';

/** Replicates two repository prefixes to another account. */
export class ConsumerStack extends Stack {
  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);

    const destinationAccountId = new CfnParameter(this, 'DestinationAccountId', {
      type: 'String',
      description: 'Account that receives the images.',
      allowedPattern: '^\\d{12}$',
      constraintDescription: 'must be a 12-digit account ID.',
    });
    const destinationRegion = new CfnParameter(this, 'DestinationRegion', {
      type: 'String',
      description: 'Region that receives the images.',
      allowedPattern: '^[a-z]{2}(-[a-z]+)+-\\d$',
      default: 'eu-west-1',
    });
    const destinationRoleName = new CfnParameter(this, 'DestinationRoleName', {
      type: 'String',
      description: 'Role created in the destination account by examples/destination-role.yaml.',
      allowedPattern: '^[\\w+=,.@-]{1,64}$',
      default: 'ecr-replication-destination',
    });

    const replication = new EcrReplication(this, 'Replication', {
      destinations: [
        {
          region: destinationRegion.valueAsString,
          accountId: destinationAccountId.valueAsString,
          roleArn: Stack.of(this).formatArn({
            service: 'iam',
            region: '',
            account: destinationAccountId.valueAsString,
            resource: 'role',
            resourceName: destinationRoleName.valueAsString,
          }),
        },
      ],
      repositoryPrefixes: ['team-a/', 'base-images/'],
      allowCreateRepository: true,
      backfillExistingImages: true,
      destinationRepositorySettings: {
        imageTagMutability: 'IMMUTABLE',
        lifecyclePolicy: JSON.stringify({
          rules: [
            {
              rulePriority: 1,
              description: 'expire untagged images after 14 days',
              selection: {
                tagStatus: 'untagged',
                countType: 'sinceImagePushed',
                countUnit: 'days',
                countNumber: 14,
              },
              action: { type: 'expire' },
            },
          ],
        }),
      },
    });

    new CfnOutput(this, 'SourceRegistryId', { value: replication.sourceRegistryId });
    new CfnOutput(this, 'StatementId', { value: replication.statementId });
  }
}
