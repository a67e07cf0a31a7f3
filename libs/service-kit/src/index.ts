export { booleanFromEnv, ConfigError, durationMsSchema, loadConfig, loadServiceToken, portSchema } from './config';
export { createLogger } from './logger';
export type { Logger, LoggerOptions } from './logger';
export { Counter, createMetricsRegistry, Gauge, Histogram, Registry } from './metrics';
export { histogramBuckets, maxOf, parsePrometheusText, readMetrics, sumOf } from './metrics-text';
export type { MetricSample } from './metrics-text';
export { startOpsHttpServer } from './ops-http-server';
export type { OpsHttpServer, OpsHttpServerOptions } from './ops-http-server';
export { startGrpcServer } from './grpc-server';
export type { GrpcServerHandle, GrpcServerOptions, GrpcServiceRegistration } from './grpc-server';
export { runService } from './lifecycle';
export type { RunningService, RunServiceOptions } from './lifecycle';
export { bearerTokenFrom, constantTimeEquals } from './grpc-auth';
export {
  DEFAULT_RETRY_DELAY_MS,
  detailsOfStatus,
  detailTypeUrls,
  grpcStatusError,
  hasServiceCredential,
  invalidArgumentError,
  InvalidArgumentError,
  retryLaterError,
  richStatus,
  STATUS_DETAILS_TRAILER,
  statusOfTrailers,
} from './grpc-errors';
export type { FieldViolation, StatusDetails } from './grpc-errors';
export { grpcTlsConfigShape, loadServiceTls, ReloadingCertificates, tlsConfigShape } from './tls';
export type { ReloadingCertificatesOptions, ServiceTls, TlsConfig } from './tls';
export { ClientTlsError, grpcClientCredentials, httpsClientOptions, httpsGetText, httpsRequestText, usesTls } from './tls-client';
export type { ClientTlsOptions, HttpsRequest } from './tls-client';
