# Email verification, and one canonical form for stored addresses.

import unicodedata

from django.db import migrations, models


def canonical(address):
    # The same as orgs.models.canonical_email, frozen here as migrations must be.
    return unicodedata.normalize("NFKC", (address or "").strip()).lower()


def verify_existing_users(apps, schema_editor):
    """Everyone who exists before sign-up verification counts as verified, since joining."""
    User = apps.get_model("orgs", "User")
    User.objects.filter(email_verified_at__isnull=True).update(
        email_verified_at=models.F("date_joined")
    )


def normalize_emails(apps, schema_editor):
    """Store every address in its canonical form, where no other row already holds it."""
    User = apps.get_model("orgs", "User")
    Invitation = apps.get_model("orgs", "Invitation")
    taken = set(User.objects.values_list("email", flat=True))
    for pk, email in User.objects.values_list("pk", "email").iterator():
        normal = canonical(email)
        if normal != email and normal not in taken:
            User.objects.filter(pk=pk).update(email=normal)
            taken.add(normal)
    for pk, email in Invitation.objects.values_list("pk", "email").iterator():
        normal = canonical(email)
        if normal != email:
            Invitation.objects.filter(pk=pk).update(email=normal)


class Migration(migrations.Migration):

    dependencies = [
        ('orgs', '0003_leaks'),
    ]

    operations = [
        migrations.AddField(
            model_name='user',
            name='email_verified_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(verify_existing_users, migrations.RunPython.noop, elidable=True),
        migrations.RunPython(normalize_emails, migrations.RunPython.noop, elidable=True),
    ]
