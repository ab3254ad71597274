#!/usr/bin/env node
import { App } from 'aws-cdk-lib';
import { ConsumerStack } from '../lib/consumer-stack';

const app = new App();

// No env: the stack is environment-agnostic, so synth needs no credentials
// and does no lookups. Deploy it into the account and region that hold the
// provider stack.
new ConsumerStack(app, 'EcrReplicationConsumer');
