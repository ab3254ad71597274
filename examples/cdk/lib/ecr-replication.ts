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
  /** Role in the destination account that ECR uses to apply a template with a KMS key or tags. */
  readonly templateRoleArn?: string;
}

/** Settings of the repositories that replication creates in each destination. */
export interface DestinationRepositorySettings {
  readonly imageTagMutability?: 'MUTABLE' | 'IMMUTABLE';
  readonly encryptionType?: 'AES256' | 'KMS';
  /** A key id (a multi-region key replicated to each destination region) or a key ARN. */
  readonly kmsKey?: string;
  /** An ECR lifecycle policy document, as JSON text. */
  readonly lifecyclePolicy?: string;
  readonly resourceTags?: { readonly key: string; readonly value: string }[];
}

export interface EcrReplicationProps {
  /** 1 to 25 destinations. */
  readonly destinations: EcrReplicationDestination[];
  /** 0 to 100 repository name prefixes. Default: every repository. */
  readonly repositoryPrefixes?: string[];
  /** Let replication create missing repositories in the destinations. Default: false. */
  readonly allowCreateRepository?: boolean;
  /** Copy images that already exist to new destinations. Default: false. */
  readonly backfillExistingImages?: boolean;
  /** Settings of the repositories that replication creates. Default: ECR's. */
  readonly destinationRepositorySettings?: DestinationRepositorySettings;
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
          ...(d.templateRoleArn !== undefined && { TemplateRoleArn: d.templateRoleArn }),
        })),
        ...(props.repositoryPrefixes !== undefined && {
          RepositoryPrefixes: props.repositoryPrefixes,
        }),
        ...(props.allowCreateRepository !== undefined && {
          AllowCreateRepository: props.allowCreateRepository ? 'true' : 'false',
        }),
        ...(props.backfillExistingImages !== undefined && {
          BackfillExistingImages: props.backfillExistingImages ? 'true' : 'false',
        }),
        ...(props.destinationRepositorySettings !== undefined && {
          DestinationRepositorySettings: repositorySettings(props.destinationRepositorySettings),
        }),
      },
    });

    this.sourceRegistryId = resource.getAttString('SourceRegistryId');
    this.statementId = resource.getAttString('StatementId');
  }
}

function repositorySettings(s: DestinationRepositorySettings): Record<string, unknown> {
  return {
    ...(s.imageTagMutability !== undefined && { ImageTagMutability: s.imageTagMutability }),
    ...(s.encryptionType !== undefined && { EncryptionType: s.encryptionType }),
    ...(s.kmsKey !== undefined && { KmsKey: s.kmsKey }),
    ...(s.lifecyclePolicy !== undefined && { LifecyclePolicy: s.lifecyclePolicy }),
    ...(s.resourceTags !== undefined && {
      ResourceTags: s.resourceTags.map((t) => ({ Key: t.key, Value: t.value })),
    }),
  };
}
