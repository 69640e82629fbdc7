"""Compute (spec section 2): the ECS cluster, the backend task definition, the Fargate service
and its autoscaling.

- Task: 0.5 vCPU / 1 GB, one ``backend`` container on port 5000 with a ``GET /health`` check
  every 30 s (``node -e`` with fetch: slim Node images have no curl), logs to
  ``/aws/ecs/karematch-<env>``.
  DATABASE_URL, ENCRYPTION_KEY and SESSION_SECRET come from the app secret as ECS ``secrets``
  (never plain environment); the environment holds only NODE_ENV, PORT, AWS_REGION and
  AWS_SECRET_NAME.
- Service: Fargate in the private subnets without public IPs, behind the ALB target group;
  rolling update 100 %/200 % with the circuit breaker rolling back.
- No image yet (``ImageTag`` empty, the first deploy): the service runs 0 tasks and has no
  scaling, so nothing pulls a missing image or trips the circuit breaker; CI pushes the image
  and the next deploy passes its tag. With an image: ``DesiredCount`` tasks (the deployer passes
  the live count on updates) and target tracking on CPU 70 % / memory 80 % between 1 and 4.

Parameters:
    EnvironmentName, LogRetentionDays, ImageTag, DesiredCount: root knobs.
    PrivateSubnetIds, AppSecurityGroupId: network and security stacks.
    TargetGroupArn: load balancer stack.
    RepositoryUri: registry stack.
    TaskExecutionRoleArn, TaskRoleArn: IAM stack.
    AppSecretArn, AppSecretName: app-secret stack.

Outputs:
    ClusterName, ServiceName, AppLogGroupName.
"""

from __future__ import annotations

from dataclasses import dataclass

from troposphere import GetAtt, If, Join, Ref, Sub, Template
from troposphere.applicationautoscaling import (
    PredefinedMetricSpecification,
    ScalableTarget,
    ScalingPolicy,
    TargetTrackingScalingPolicyConfiguration,
)
from troposphere.ecs import (
    AwsvpcConfiguration,
    Cluster,
    ClusterSetting,
    ContainerDefinition,
    DeploymentCircuitBreaker,
    DeploymentConfiguration,
    DeploymentController,
    Environment,
    HealthCheck,
    KernelCapabilities,
    LinuxParameters,
    LoadBalancer,
    LogConfiguration,
    MountPoint,
    NetworkConfiguration,
    PortMapping,
    RuntimePlatform,
    Secret,
    Service,
    TaskDefinition,
    Volume,
)
from troposphere.logs import LogGroup

from karematch_cfn import names, render
from karematch_cfn.lib import conditions, logs, tags

# Logical IDs.
CLUSTER = "Cluster"
APP_LOG_GROUP = "AppLogGroup"
TASK_DEFINITION = "BackendTaskDefinition"
SERVICE = "BackendService"
SCALABLE_TARGET = "BackendScalableTarget"
CPU_SCALING_POLICY = "BackendCpuScalingPolicy"
MEMORY_SCALING_POLICY = "BackendMemoryScalingPolicy"

HAS_IMAGE = names.HAS_IMAGE

# Spec section 2.
TASK_CPU = "512"  # 0.5 vCPU
TASK_MEMORY = "1024"  # MiB (1 GB)
LAUNCH_TYPE = "FARGATE"
MINIMUM_HEALTHY_PERCENT = 100
MAXIMUM_PERCENT = 200
CPU_TARGET_PERCENT = 70.0
MEMORY_TARGET_PERCENT = 80.0
MIN_TASKS = 1
MAX_TASKS = 4
SECRET_KEYS = ("DATABASE_URL", "ENCRYPTION_KEY", "SESSION_SECRET")  # keys of the app secret
NODE_ENV = "production"

# Not in the spec (docs/decisions.md).
CONTAINER_NAME = "backend"
TASK_FAMILY = f"karematch-{names.ENV}-backend"
# Tag of the task definition registered before CI has pushed anything; never pulled, because
# without an image the service runs 0 tasks and has no scaling.
BOOTSTRAP_IMAGE_TAG = "bootstrap"
HEALTH_CHECK_TIMEOUT_SECONDS = 5
HEALTH_CHECK_RETRIES = 3
HEALTH_CHECK_START_PERIOD_SECONDS = 60
# ALB health checks are ignored this long after a task starts: the container's start period
# plus the target group's healthy checks, one interval apart (60 s + 2 x 30 s = 120 s).
HEALTH_CHECK_GRACE_PERIOD_SECONDS = (
    HEALTH_CHECK_START_PERIOD_SECONDS + names.HEALTHY_THRESHOLD * names.HEALTH_CHECK_INTERVAL_SECONDS
)
# HIPAA hardening (the image side is in docs/backend-image.md): the root filesystem is
# read-only; /tmp is a task bind mount (Fargate has no tmpfs), the only writable path (root-owned
# 0755 unless the image declares VOLUME ["/tmp"] on a directory its user owns); the
# process runs as a non-root numeric user with every Linux capability dropped; the container's
# hard memory limit is the task's memory.
READONLY_ROOT_FILESYSTEM = True
SCRATCH_VOLUME = "scratch"
SCRATCH_PATH = "/tmp"
DROPPED_CAPABILITIES = ["ALL"]
SCALE_OUT_COOLDOWN_SECONDS = 60
SCALE_IN_COOLDOWN_SECONDS = 300
# Application Auto Scaling's service-linked role for ECS (created on first use).
AUTOSCALING_ROLE = (
    "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/"
    "ecs.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_ECSService"
)


@dataclass(frozen=True)
class Inputs:
    retention_days: Ref
    desired_count: Ref
    private_subnets: Ref
    app_security_group: Ref
    target_group: Ref
    execution_role: Ref
    task_role: Ref
    app_secret_name: Ref
    data_key: Ref


def declare_inputs(t: Template) -> Inputs:
    names.declare(t, names.ENVIRONMENT_NAME)
    # Read only through Fn::Sub placeholders (the image and the secret's keys).
    names.declare(t, names.IMAGE_TAG)
    names.declare(t, names.REPOSITORY_URI, "ECR repository URI of the backend")
    names.declare(t, names.APP_SECRET_ARN, "ARN of the app secret (JSON with the injected keys)")
    return Inputs(
        retention_days=Ref(
            names.declare(
                t, names.LOG_RETENTION_DAYS, "Retention of the backend container log group, in days"
            )
        ),
        desired_count=Ref(names.declare(t, names.DESIRED_COUNT)),
        private_subnets=Ref(
            names.declare(t, names.PRIVATE_SUBNET_IDS, "Private subnets (one per AZ) for the tasks")
        ),
        app_security_group=Ref(
            names.declare(t, names.APP_SECURITY_GROUP_ID, "Security group of the backend tasks")
        ),
        target_group=Ref(
            names.declare(t, names.TARGET_GROUP_ARN, "ALB target group the tasks register with")
        ),
        execution_role=Ref(
            names.declare(
                t, names.TASK_EXECUTION_ROLE_ARN, "Role ECS uses to pull the image, read secrets, log"
            )
        ),
        task_role=Ref(names.declare(t, names.TASK_ROLE_ARN, "Role the application runs as")),
        app_secret_name=Ref(
            names.declare(t, names.APP_SECRET_NAME, "Name of the app secret, for the application's refresh")
        ),
        data_key=Ref(
            names.declare(
                t, names.DATA_KEY_ARN, "ARN of the environment's customer-managed KMS key (foundation.yaml)"
            )
        ),
    )


def add_cluster(t: Template) -> Cluster:
    cluster = Cluster(
        CLUSTER,
        ClusterName=Sub(names.CLUSTER),
        # Container Insights publishes RunningTaskCount, which the running-tasks alarm watches.
        ClusterSettings=[ClusterSetting(Name="containerInsights", Value="enabled")],
        Tags=tags.standard(names.CLUSTER),
    )
    return t.add_resource(cluster)


def add_log_group(t: Template, p: Inputs) -> LogGroup:
    return t.add_resource(
        logs.log_group(APP_LOG_GROUP, names.APP_LOG_GROUP, p.retention_days, KmsKeyId=p.data_key)
    )


def health_check_command() -> list[str]:
    """Exec form (no shell needed): Node 20's fetch against the health endpoint. 127.0.0.1, not
    localhost, which Node may resolve to ::1 while the app listens on IPv4 only."""
    url = f"http://127.0.0.1:{names.CONTAINER_PORT}{names.HEALTH_CHECK_PATH}"
    script = f"fetch('{url}').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"
    return ["CMD", "node", "-e", script]


def add_task_definition(t: Template, p: Inputs, log_group: LogGroup) -> TaskDefinition:
    image = If(
        HAS_IMAGE,
        Sub("${RepositoryUri}:${ImageTag}"),
        Sub(f"${{RepositoryUri}}:{BOOTSTRAP_IMAGE_TAG}"),
    )
    container = ContainerDefinition(
        Name=CONTAINER_NAME,
        Image=image,
        Essential=True,
        PortMappings=[PortMapping(ContainerPort=names.CONTAINER_PORT, Protocol="tcp")],
        HealthCheck=HealthCheck(
            Command=health_check_command(),
            Interval=names.HEALTH_CHECK_INTERVAL_SECONDS,
            Timeout=HEALTH_CHECK_TIMEOUT_SECONDS,
            Retries=HEALTH_CHECK_RETRIES,
            StartPeriod=HEALTH_CHECK_START_PERIOD_SECONDS,
        ),
        Secrets=[Secret(Name=key, ValueFrom=Sub(f"${{AppSecretArn}}:{key}::")) for key in SECRET_KEYS],
        Environment=[
            Environment(Name="NODE_ENV", Value=NODE_ENV),
            Environment(Name="PORT", Value=str(names.CONTAINER_PORT)),
            Environment(Name="AWS_REGION", Value=Ref("AWS::Region")),
            Environment(Name="AWS_SECRET_NAME", Value=p.app_secret_name),
        ],
        LogConfiguration=LogConfiguration(
            LogDriver="awslogs",
            Options={
                "awslogs-group": Ref(log_group),
                "awslogs-region": Ref("AWS::Region"),
                "awslogs-stream-prefix": "backend",
            },
        ),
        ReadonlyRootFilesystem=READONLY_ROOT_FILESYSTEM,
        MountPoints=[MountPoint(SourceVolume=SCRATCH_VOLUME, ContainerPath=SCRATCH_PATH, ReadOnly=False)],
        User="1000:1000",  # the node user of the official Node images, by number
        LinuxParameters=LinuxParameters(Capabilities=KernelCapabilities(Drop=DROPPED_CAPABILITIES)),
        Memory=int(TASK_MEMORY),
    )
    task = TaskDefinition(
        TASK_DEFINITION,
        Family=Sub(TASK_FAMILY),
        RequiresCompatibilities=[LAUNCH_TYPE],
        NetworkMode="awsvpc",
        Cpu=TASK_CPU,
        Memory=TASK_MEMORY,
        RuntimePlatform=RuntimePlatform(OperatingSystemFamily="LINUX", CpuArchitecture="X86_64"),
        ExecutionRoleArn=p.execution_role,
        TaskRoleArn=p.task_role,
        ContainerDefinitions=[container],
        # A bind mount without a host path: Fargate's ephemeral task storage, writable.
        Volumes=[Volume(Name=SCRATCH_VOLUME)],
        Tags=tags.standard(TASK_FAMILY),
    )
    return t.add_resource(task)


def add_service(t: Template, p: Inputs, *, cluster: Cluster, task: TaskDefinition) -> Service:
    service = Service(
        SERVICE,
        ServiceName=Sub(names.SERVICE),
        Cluster=Ref(cluster),
        TaskDefinition=Ref(task),
        LaunchType=LAUNCH_TYPE,
        PlatformVersion="LATEST",
        # No image yet: run nothing (tasks without an image trip the circuit breaker and roll back
        # the whole root, database included).
        DesiredCount=If(HAS_IMAGE, p.desired_count, 0),
        NetworkConfiguration=NetworkConfiguration(
            AwsvpcConfiguration=AwsvpcConfiguration(
                Subnets=p.private_subnets,
                SecurityGroups=[p.app_security_group],
                AssignPublicIp="DISABLED",
            )
        ),
        DeploymentController=DeploymentController(Type="ECS"),
        DeploymentConfiguration=DeploymentConfiguration(
            MinimumHealthyPercent=MINIMUM_HEALTHY_PERCENT,
            MaximumPercent=MAXIMUM_PERCENT,
            DeploymentCircuitBreaker=DeploymentCircuitBreaker(Enable=True, Rollback=True),
        ),
        LoadBalancers=[
            LoadBalancer(
                ContainerName=CONTAINER_NAME,
                ContainerPort=names.CONTAINER_PORT,
                TargetGroupArn=p.target_group,
            )
        ],
        HealthCheckGracePeriodSeconds=HEALTH_CHECK_GRACE_PERIOD_SECONDS,
        EnableExecuteCommand=False,
        EnableECSManagedTags=True,
        PropagateTags="SERVICE",
        Tags=tags.standard(names.SERVICE),
    )
    return t.add_resource(service)


def add_autoscaling(t: Template, cluster: Cluster, service: Service) -> None:
    target = t.add_resource(
        ScalableTarget(
            SCALABLE_TARGET,
            Condition=HAS_IMAGE,
            ServiceNamespace="ecs",
            ScalableDimension="ecs:service:DesiredCount",
            ResourceId=Join("/", ["service", Ref(cluster), GetAtt(service, "Name")]),
            MinCapacity=MIN_TASKS,
            MaxCapacity=MAX_TASKS,
            RoleARN=Sub(AUTOSCALING_ROLE),
        )
    )
    _target_tracking(
        t,
        CPU_SCALING_POLICY,
        target=target,
        name="cpu",
        tracking=TargetTrackingScalingPolicyConfiguration(
            PredefinedMetricSpecification=PredefinedMetricSpecification(
                PredefinedMetricType="ECSServiceAverageCPUUtilization"
            ),
            TargetValue=CPU_TARGET_PERCENT,
            ScaleOutCooldown=SCALE_OUT_COOLDOWN_SECONDS,
            ScaleInCooldown=SCALE_IN_COOLDOWN_SECONDS,
        ),
    )
    _target_tracking(
        t,
        MEMORY_SCALING_POLICY,
        target=target,
        name="memory",
        tracking=TargetTrackingScalingPolicyConfiguration(
            PredefinedMetricSpecification=PredefinedMetricSpecification(
                PredefinedMetricType="ECSServiceAverageMemoryUtilization"
            ),
            TargetValue=MEMORY_TARGET_PERCENT,
            ScaleOutCooldown=SCALE_OUT_COOLDOWN_SECONDS,
            ScaleInCooldown=SCALE_IN_COOLDOWN_SECONDS,
        ),
    )


def _target_tracking(
    t: Template,
    logical_id: str,
    *,
    target: ScalableTarget,
    name: str,
    tracking: TargetTrackingScalingPolicyConfiguration,
) -> ScalingPolicy:
    """A target-tracking policy on the service's task count (only once an image exists)."""
    return t.add_resource(
        ScalingPolicy(
            logical_id,
            Condition=HAS_IMAGE,
            PolicyName=Sub(f"karematch-{names.ENV}-backend-{name}"),
            PolicyType="TargetTrackingScaling",
            ScalingTargetId=Ref(target),
            TargetTrackingScalingPolicyConfiguration=tracking,
        )
    )


def build() -> Template:
    t = render.new_template(
        "KareMatch compute: ECS cluster, backend task definition, Fargate service, autoscaling"
    )
    p = declare_inputs(t)
    conditions.has_image(t)
    cluster = add_cluster(t)
    log_group = add_log_group(t, p)
    task = add_task_definition(t, p, log_group)
    service = add_service(t, p, cluster=cluster, task=task)
    add_autoscaling(t, cluster, service)
    render.add_outputs(
        t,
        {
            names.CLUSTER_NAME: Ref(cluster),
            names.SERVICE_NAME: GetAtt(service, "Name"),
            names.APP_LOG_GROUP_NAME: Ref(log_group),
        },
    )
    return t
