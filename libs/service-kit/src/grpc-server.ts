import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import type { Logger } from './logger';
import type { ServiceTls } from './tls';

export interface GrpcServiceRegistration {
  /** Fully qualified, e.g. 'tolls.ingest.v1.IngestService'; also the name reported by health checks. */
  name: string;
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
}

export interface GrpcServerOptions {
  /** Defaults to 0.0.0.0. */
  host?: string;
  /** 0 picks a free port; the bound one is in the handle. */
  port: number;
  services: GrpcServiceRegistration[];
  logger: Logger;
  /** A FileDescriptorSet (buf build output) as base64; enables server reflection when given. */
  fileDescriptorSetBase64?: string;
  /** Defaults to 4 MiB. */
  maxReceiveMessageBytes?: number;
  /** Serve TLS (mutual TLS when the certificates carry a client CA); undefined: plaintext. */
  tls?: ServiceTls;
}

export interface GrpcServerHandle {
  server: grpc.Server;
  port: number;
  /** SERVING or NOT_SERVING for every registered service and for "" (the whole server). */
  setServing(serving: boolean): void;
  /** NOT_SERVING, then let in-flight calls finish; calls still open after graceMs are cancelled. */
  shutdown(graceMs: number): Promise<void>;
}

export const DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = 4 * 1024 * 1024;

const HEALTH_SERVICE_NAME = 'grpc.health.v1.Health';

/** A grpc-js server with the platform's standard extras: grpc.health.v1 and server reflection. */
export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServerHandle> {
  const { logger, services } = options;
  const server = new grpc.Server({
    'grpc.max_receive_message_length': options.maxReceiveMessageBytes ?? DEFAULT_MAX_RECEIVE_MESSAGE_BYTES,
  });

  for (const service of services) server.addService(service.definition, service.implementation);

  const serviceNames = ['', ...services.map((service) => service.name)];
  // NOT_SERVING until the port is bound, so nothing reports healthy before it can take calls.
  const health = new HealthImplementation(Object.fromEntries(serviceNames.map((name) => [name, 'NOT_SERVING'])));
  health.addToServer(server);

  if (options.fileDescriptorSetBase64) {
    addReflection(server, options.fileDescriptorSetBase64, services, logger);
  }

  // Plaintext unless TLS is configured: locally, or with TLS terminated in front of the pod (ADR 0017).
  const address = `${options.host ?? '0.0.0.0'}:${options.port}`;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, serverCredentials(options.tls), (error, boundPort) =>
      error ? reject(error) : resolve(boundPort),
    );
  });

  const setServing = (serving: boolean): void => {
    for (const name of serviceNames) health.setStatus(name, serving ? 'SERVING' : 'NOT_SERVING');
  };
  setServing(true);
  logger.info(
    { port, services: services.map((service) => service.name), tls: options.tls !== undefined, mutualTls: options.tls?.certificates.requireClientCertificate ?? false },
    'grpc server listening',
  );

  let shutdownPromise: Promise<void> | undefined;
  const shutdown = (graceMs: number): Promise<void> => {
    shutdownPromise ??= new Promise<void>((resolve) => {
      setServing(false);
      const timer = setTimeout(() => {
        logger.warn({ graceMs }, 'grpc calls still open after the grace period; cancelling them');
        server.forceShutdown();
        resolve();
      }, graceMs);
      server.tryShutdown((error) => {
        clearTimeout(timer);
        if (error) logger.warn({ err: error }, 'grpc graceful shutdown reported an error');
        resolve();
      });
    });
    return shutdownPromise;
  };

  return { server, port, setServing, shutdown };
}

function serverCredentials(tls: ServiceTls | undefined): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  const { certificates } = tls;
  // grpc-js 1.14 declares the parameters as (ca, identity, …) but its implementation takes the identity
  // provider first; the TLS tests (tls.spec.ts) fail if either ever changes. One provider serves both.
  return grpc.experimental.createCertificateProviderServerCredentials(
    certificates,
    certificates.requireClientCertificate ? certificates : null,
    certificates.requireClientCertificate,
  );
}

function addReflection(
  server: grpc.Server,
  fileDescriptorSetBase64: string,
  services: GrpcServiceRegistration[],
  logger: Logger,
): void {
  const loaderOptions: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
  const described = protoLoader.loadFileDescriptorSetFromBuffer(
    Buffer.from(fileDescriptorSetBase64, 'base64'),
    loaderOptions,
  );
  // The health proto is added so clients listing services also see grpc.health.v1.Health.
  const healthProto = protoLoader.loadSync('health/v1/health.proto', {
    ...loaderOptions,
    includeDirs: [path.resolve(path.dirname(healthProtoPath), '../..')],
  });

  const missing = services.map((service) => service.name).filter((name) => !(name in described));
  if (missing.length > 0) {
    logger.warn({ services: missing }, 'services missing from the descriptor set are not visible to reflection');
  }

  // Only what this server actually hosts: the descriptor set usually describes every service of the platform.
  const exposed = [...services.map((service) => service.name), HEALTH_SERVICE_NAME];
  new ReflectionService({ ...healthProto, ...described }, { services: exposed }).addToServer(server);
}
