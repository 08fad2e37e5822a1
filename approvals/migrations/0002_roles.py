from django.db import migrations


def sync_roles(apps, schema_editor):
    from controlplane.roles import sync_role_groups

    sync_role_groups(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0001_initial"),
        ("controlplane", "0004_audit_sealed_by_a_sealer"),
    ]

    operations = [migrations.RunPython(sync_roles, migrations.RunPython.noop)]
