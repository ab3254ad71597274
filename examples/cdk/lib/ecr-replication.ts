import { CustomResource, Fn } from 'aws-cdk-lib';
import { Construct } from 'constructs';

/** One replication target. */
export interface EcrReplicationDestination {
  /** Region that receives the images. */
  readonly region: string;
  /** Account that receives the images. Default: the source account. */
  readonly accountId?: string;
  /** Role to assume in the destination account; required when accountId is another account. */
  readonly roleArn?: string;
  /** External ID passed to AssumeRole. */
  readonly externalId?: string;
}

export interface EcrReplicationProps {
  /** 1 to 25 destinations. */
  readonly destinations: EcrReplicationDestination[];
  /** 0 to 100 repository name prefixes. Default: every repository. */
  readonly repositoryPrefixes?: string[];
  /** Let replication create missing repositories in the destinations. Default: false. */
  readonly allowCreateRepository?: boolean;
  /** Provider function ARN. Default: the EcrReplicationServiceToken export. */
  readonly serviceToken?: string;
}

/** A Custom::EcrReplication resource. */
export class EcrReplication extends Construct {
  /** Registry (account) ID that images are replicated from. */
  public readonly sourceRegistryId: string;
  /** Sid of the statement added to the destination registry policies; also the physical ID. */
  public readonly statementId: string;

  constructor(scope: Construct, id: string, props: EcrReplicationProps) {
    super(scope, id);

    const resource = new CustomResource(this, 'Resource', {
      resourceType: 'Custom::EcrReplication',
      serviceToken: props.serviceToken ?? Fn.importValue('EcrReplicationServiceToken'),
      properties: {
        Destinations: props.destinations.map((d) => ({
          Region: d.region,
          ...(d.accountId !== undefined && { AccountId: d.accountId }),
          ...(d.roleArn !== undefined && { RoleArn: d.roleArn }),
          ...(d.externalId !== undefined && { ExternalId: d.externalId }),
        })),
        ...(props.repositoryPrefixes !== undefined && {
          RepositoryPrefixes: props.repositoryPrefixes,
        }),
        ...(props.allowCreateRepository !== undefined && {
          AllowCreateRepository: props.allowCreateRepository ? 'true' : 'false',
        }),
      },
    });

    this.sourceRegistryId = resource.getAttString('SourceRegistryId');
    this.statementId = resource.getAttString('StatementId');
  }
}
