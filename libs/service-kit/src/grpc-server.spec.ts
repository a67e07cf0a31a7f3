import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileDescriptorSetBase64, IngestServiceService } from '@tollstream/contracts';
import { service as healthService } from 'grpc-health-check';
import { startGrpcServer, type GrpcServerHandle, type GrpcServiceRegistration } from './grpc-server';
import { createLogger } from './logger';

const logger = createLogger({ service: 'grpc-test', level: 'silent' });

// A raw-bytes service so the tests do not depend on message shapes that other work may change.
const identity = (value: Buffer): Buffer => value;
const echoDefinition: grpc.ServiceDefinition = {
  echo: {
    path: '/test.v1.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

/** Echoes the request; a request "sleep:<ms>" answers after that many milliseconds. */
const echoService: GrpcServiceRegistration = {
  name: 'test.v1.Echo',
  definition: echoDefinition,
  implementation: {
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const text = call.request.toString();
      const sleep = /^sleep:(\d+)$/.exec(text);
      if (!sleep) {
        callback(null, call.request);
        return;
      }
      const timer = setTimeout(() => callback(null, Buffer.from('slept')), Number(sleep[1]));
      call.on('cancelled', () => clearTimeout(timer));
    },
  },
};

const ingestService: GrpcServiceRegistration = {
  name: 'tolls.ingest.v1.IngestService',
  definition: IngestServiceService,
  implementation: {
    submitTransactions: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) =>
      callback({ code: grpc.status.UNIMPLEMENTED }),
    streamTransactions: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.end(),
  },
};

function unary<Req, Res>(client: grpc.Client, method: protoLoader.MethodDefinition<Req, Res>, request: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(method.path, method.requestSerialize, method.responseDeserialize, request, (error, value) =>
      error || value === undefined ? reject(error) : resolve(value),
    );
  });
}

function echo(client: grpc.Client, text: string | Buffer): Promise<string> {
  return unary(client, echoDefinition['echo'] as protoLoader.MethodDefinition<Buffer, Buffer>, Buffer.from(text)).then(
    (reply) => reply.toString(),
  );
}

async function healthStatus(client: grpc.Client, service: string): Promise<string> {
  const check = healthService['Check'] as protoLoader.MethodDefinition<{ service: string }, { status: string }>;
  return (await unary(client, check, { service })).status;
}

interface ReflectionResponse {
  list_services_response?: { service: Array<{ name: string }> };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  error_response?: { error_code: number; error_message: string };
}

/** One request/response exchange on grpc.reflection.v1.ServerReflection/ServerReflectionInfo, as grpcurl does. */
async function reflect(address: string, request: object): Promise<ReflectionResponse> {
  // The reflection proto ships inside @grpc/reflection.
  const protoFile = path.join(
    path.dirname(require.resolve('@grpc/reflection/package.json')),
    'build/proto/grpc/reflection/v1/reflection.proto',
  );
  const definition = protoLoader.loadSync(protoFile, { keepCase: true, enums: String, defaults: true, oneofs: true });
  const reflection = definition['grpc.reflection.v1.ServerReflection'] as protoLoader.ServiceDefinition;
  const method = reflection['ServerReflectionInfo'] as protoLoader.MethodDefinition<object, ReflectionResponse>;

  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  try {
    return await new Promise<ReflectionResponse>((resolve, reject) => {
      const call = client.makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize);
      call.on('data', (response: ReflectionResponse) => {
        resolve(response);
        call.end();
      });
      call.on('error', reject);
      call.write(request);
    });
  } finally {
    client.close();
  }
}

describe('startGrpcServer', () => {
  let handle: GrpcServerHandle;
  let client: grpc.Client;
  let address: string;

  beforeAll(async () => {
    handle = await startGrpcServer({
      host: '127.0.0.1',
      port: 0,
      services: [ingestService, echoService],
      logger,
      fileDescriptorSetBase64,
      maxReceiveMessageBytes: 64 * 1024,
    });
    address = `127.0.0.1:${handle.port}`;
    client = new grpc.Client(address, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client.close();
    await handle.shutdown(100);
  });

  it('serves the registered services on a free port', async () => {
    expect(handle.port).toBeGreaterThan(0);
    expect(await echo(client, 'hello')).toBe('hello');
  });

  it('reports SERVING through grpc.health.v1, then NOT_SERVING after setServing(false)', async () => {
    expect(await healthStatus(client, '')).toBe('SERVING');
    expect(await healthStatus(client, 'tolls.ingest.v1.IngestService')).toBe('SERVING');

    handle.setServing(false);
    expect(await healthStatus(client, '')).toBe('NOT_SERVING');
    expect(await healthStatus(client, 'tolls.ingest.v1.IngestService')).toBe('NOT_SERVING');

    handle.setServing(true);
    expect(await healthStatus(client, '')).toBe('SERVING');
    await expect(healthStatus(client, 'no.such.Service')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it('lists the hosted services of the descriptor set through reflection', async () => {
    const listed = await reflect(address, { list_services: '*' });
    const names = (listed.list_services_response?.service ?? []).map((service) => service.name);
    // Only what this server hosts: the raw-bytes echo service has no descriptor.
    expect(names.sort()).toEqual(['grpc.health.v1.Health', 'tolls.ingest.v1.IngestService']);

    const described = await reflect(address, { file_containing_symbol: 'tolls.ingest.v1.IngestService' });
    expect(described.error_response).toBeUndefined();
    expect(described.file_descriptor_response?.file_descriptor_proto.length).toBeGreaterThan(0);
  });

  it('rejects messages above the configured receive limit', async () => {
    await expect(echo(client, Buffer.alloc(65 * 1024))).rejects.toMatchObject({
      code: grpc.status.RESOURCE_EXHAUSTED,
    });
    expect(await echo(client, Buffer.alloc(60 * 1024, 'a'))).toHaveLength(60 * 1024);
  });
});

describe('GrpcServerHandle.shutdown', () => {
  async function startEcho(): Promise<{ handle: GrpcServerHandle; client: grpc.Client }> {
    const handle = await startGrpcServer({ host: '127.0.0.1', port: 0, services: [echoService], logger });
    return { handle, client: new grpc.Client(`127.0.0.1:${handle.port}`, grpc.credentials.createInsecure()) };
  }

  it('lets an in-flight call finish within the grace period', async () => {
    const { handle, client } = await startEcho();
    try {
      expect(await echo(client, 'warm-up')).toBe('warm-up');
      const inFlight = echo(client, 'sleep:150');
      await new Promise((resolve) => setTimeout(resolve, 30));
      await handle.shutdown(2000);
      expect(await inFlight).toBe('slept');
    } finally {
      client.close();
    }
  });

  it('cancels calls still open after the grace period', async () => {
    const { handle, client } = await startEcho();
    try {
      expect(await echo(client, 'warm-up')).toBe('warm-up');
      const inFlight = echo(client, 'sleep:10000');
      await new Promise((resolve) => setTimeout(resolve, 30));
      const startedAt = Date.now();
      await handle.shutdown(200);
      expect(Date.now() - startedAt).toBeLessThan(1000);
      await expect(inFlight).rejects.toHaveProperty('code');
    } finally {
      client.close();
    }
  });
});
